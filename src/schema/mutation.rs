//! Mutations for UN case officers. Each validates its input completely before writing, writes in
//! one transaction, and returns the changed records.

use super::guard::{Guarded, Protected};
use super::inputs::{
    country, not_future, opt_text, text, AssistanceInput, FollowUpActionInput,
    NationalReferenceInput, ReportCaseInput, UpdateCaseInput, VictimInput,
};
use super::types::{
    CapacityBuildingAssistance, Case, FollowUpAction, Mission, NationalReference, Submission,
    Victim,
};
use super::{audit_write, services, store_err};
use crate::access::WriteOperation;
use crate::domain::{parse_reference, Act};
use crate::error::{gql_error, ErrorCode};
use crate::store::{
    CasePatch, NewAssistance, NewCase, NewFollowUp, NewNationalReference, NewVictim,
};
use async_graphql::{Context, Object, Result, SimpleObject, ID};
use chrono::Utc;
use std::sync::Arc;

/// Entry points for writing.
#[derive(Default)]
pub struct MutationRoot;

fn acts(list: Vec<Act>) -> Result<Vec<Act>> {
    if list.is_empty() {
        return Err(gql_error(
            ErrorCode::EmptyValue,
            "acts must name at least one act",
        ));
    }
    Ok(list)
}

fn groups(list: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    list.map(|l| {
        l.iter()
            .map(|g| text("perpetratorGroups", g, 200))
            .collect()
    })
    .transpose()
}

fn reference(arg: &'static str, raw: &str) -> Result<String> {
    parse_reference(arg, raw).map_err(|e| match e {
        crate::domain::ParseError::Empty(_) => gql_error(ErrorCode::EmptyValue, e.to_string()),
        _ => gql_error(ErrorCode::InvalidInput, e.to_string()),
    })
}

fn email(raw: &str) -> Result<String> {
    let e = raw.trim();
    let valid = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(gql_error(
            ErrorCode::InvalidInput,
            "focalPoint.email is not an e-mail address",
        ));
    }
    Ok(e.to_string())
}

/// A mission focal point.
#[derive(async_graphql::InputObject)]
pub struct FocalPointInput {
    /// Name or function title.
    pub name: String,
    /// Contact e-mail.
    pub email: Option<String>,
}

/// A case a write targets: one the writer cannot see answers exactly like one that does not
/// exist, and nothing is written.
async fn target(ctx: &Context<'_>, id: &str) -> Result<Case> {
    let case = reload(ctx, id).await?;
    if super::viewpoint(ctx).sees(&case.facts) {
        Ok(case)
    } else {
        Err(gql_error(
            ErrorCode::NotFound,
            format!("case {id} not found"),
        ))
    }
}

async fn reload(ctx: &Context<'_>, id: &str) -> Result<Case> {
    let found = services(ctx)
        .store
        .cases_by_ids(&[id.to_string()])
        .await
        .map_err(store_err)?;
    found
        .into_iter()
        .next()
        .map(Case::from)
        .ok_or_else(|| gql_error(ErrorCode::NotFound, format!("case {id} not found")))
}

/// The victim added, and the case at its new version.
#[derive(SimpleObject)]
pub struct AddVictimPayload {
    /// The new victim.
    pub victim: Guarded<Victim>,
    /// The case, at its new version.
    pub case: Guarded<Case>,
}

/// The follow-up action recorded, and the case at its new version.
#[derive(SimpleObject)]
pub struct RecordFollowUpActionPayload {
    /// The new action.
    pub follow_up_action: Guarded<FollowUpAction>,
    /// The case, at its new version.
    pub case: Guarded<Case>,
}

/// The reference linked, and the case at its new version.
#[derive(SimpleObject)]
pub struct LinkNationalReferencePayload {
    /// The new reference.
    pub national_reference: Guarded<NationalReference>,
    /// The case, at its new version.
    pub case: Guarded<Case>,
}

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Reports a new case. The store assigns its id and reference (`MISSION-YYYYMMDD`). Null
    /// when the new case is not one the writer may see.
    async fn report_case(
        &self,
        ctx: &Context<'_>,
        input: ReportCaseInput,
    ) -> Result<Option<Guarded<Case>>> {
        let actor = super::actor(ctx);
        let today = Utc::now().date_naive();
        let incident_date = not_future("incidentDate", input.incident_date.0, today)?;
        let reported_date = input
            .reported_date
            .map(|d| not_future("reportedDate", d.0, today))
            .transpose()?;
        if reported_date.is_some_and(|r| r < incident_date) {
            return Err(gql_error(
                ErrorCode::InvalidDateRange,
                "reportedDate is before incidentDate",
            ));
        }
        let coordinates = input.coordinates.map(|c| c.parse()).transpose()?;
        let case = NewCase {
            mission_code: crate::domain::MissionCode::parse(&input.mission)
                .map_err(|e| gql_error(ErrorCode::UnknownMission, format!("mission: {e}")))?
                .to_string(),
            host_state: input
                .host_state
                .as_deref()
                .map(|h| country("hostState", h))
                .transpose()?
                .map(|c| c.to_string()),
            incident_date,
            reported_date,
            acts: acts(input.acts)?,
            region: opt_text("region", &input.region, 200)?,
            locality: opt_text("locality", &input.locality, 200)?,
            latitude: coordinates.map(|c| c.0),
            longitude: coordinates.map(|c| c.1),
            summary: opt_text("summary", &input.summary, 10_000)?,
            perpetrator_groups: groups(input.perpetrator_groups)?.unwrap_or_default(),
        };
        let record = services(ctx)
            .store
            .insert_case(case, &actor)
            .await
            .map_err(store_err)?;
        tracing::info!(case = %record.id, operation = "reportCase", "Case reported");
        audit_write(ctx, WriteOperation::ReportCase, Some(&record.id));
        // A writer the policy lets report cases it will not see gets null, not the case.
        let case = Case::from(record);
        Ok(super::viewpoint(ctx)
            .sees(&case.facts)
            .then(|| Guarded(case)))
    }

    /// Changes a case if it is still at `expectedVersion`; otherwise fails with
    /// `VERSION_CONFLICT` and changes nothing.
    async fn update_case(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expected_version: i32,
        input: UpdateCaseInput,
    ) -> Result<Option<Guarded<Case>>> {
        let actor = super::actor(ctx);
        target(ctx, &id).await?;
        let today = Utc::now().date_naive();
        let patch = CasePatch {
            host_state: input
                .host_state
                .as_deref()
                .map(|h| country("hostState", h))
                .transpose()?
                .map(|c| c.to_string()),
            incident_date: input
                .incident_date
                .map(|d| not_future("incidentDate", d.0, today))
                .transpose()?,
            reported_date: input
                .reported_date
                .map(|d| not_future("reportedDate", d.0, today))
                .transpose()?,
            acts: input.acts.map(acts).transpose()?,
            region: opt_text("region", &input.region, 200)?,
            locality: opt_text("locality", &input.locality, 200)?,
            coordinates: input.coordinates.map(|c| c.parse()).transpose()?,
            summary: opt_text("summary", &input.summary, 10_000)?,
            perpetrator_groups: groups(input.perpetrator_groups)?,
        };
        if patch.incident_date.is_some() || patch.reported_date.is_some() {
            // Check the dates the case would end up with. When the case has moved on since
            // `expectedVersion`, the store refuses the update with VERSION_CONFLICT anyway.
            let current = reload(ctx, &id).await?.record;
            let incident = patch.incident_date.unwrap_or(current.incident_date);
            let reported = patch.reported_date.or(current.reported_date);
            if current.version == i64::from(expected_version)
                && reported.is_some_and(|r| r < incident)
            {
                return Err(gql_error(
                    ErrorCode::InvalidDateRange,
                    "reportedDate is before incidentDate",
                ));
            }
        }
        let record = services(ctx)
            .store
            .update_case(&id, i64::from(expected_version), patch, &actor)
            .await
            .map_err(store_err)?;
        if record
            .reported_date
            .is_some_and(|r| r < record.incident_date)
        {
            tracing::warn!(case = %record.id, "Case now has a reported date before its incident date");
        }
        tracing::info!(case = %record.id, version = record.version, operation = "updateCase", "Case updated");
        audit_write(ctx, WriteOperation::UpdateCase, Some(&record.id));
        Ok(Some(Guarded(Case::from(record))))
    }

    /// Adds a victim to a case. With `expectedVersion`, fails with `VERSION_CONFLICT` if the
    /// case changed since it was read.
    async fn add_victim(
        &self,
        ctx: &Context<'_>,
        case_id: ID,
        expected_version: Option<i32>,
        input: VictimInput,
    ) -> Result<Option<Guarded<AddVictimPayload>>> {
        let actor = super::actor(ctx);
        target(ctx, &case_id).await?;
        let nationality = input
            .nationality
            .as_deref()
            .map(|c| country("nationality", c))
            .transpose()?;
        let contributing_country = match input.contributing_country.as_deref() {
            Some(c) => Some(country("contributingCountry", c)?),
            None if input.category.is_uniformed() => nationality.clone(),
            None => None,
        };
        let victim = NewVictim {
            category: input.category,
            contributing_country,
            nationality,
            harm: input.harm,
            gender: input.gender,
            name: opt_text("name", &input.name, 200)?,
            service_number: input
                .service_number
                .as_deref()
                .map(|s| reference("serviceNumber", s))
                .transpose()?,
        };
        let record = services(ctx)
            .store
            .add_victim(&case_id, expected_version.map(i64::from), victim, &actor)
            .await
            .map_err(store_err)?;
        tracing::info!(case = %case_id.0, operation = "addVictim", "Victim added");
        audit_write(ctx, WriteOperation::AddVictim, Some(&case_id));
        let case = reload(ctx, &case_id).await?;
        Ok(Some(Guarded(AddVictimPayload {
            victim: Guarded(Victim {
                record,
                facts: Arc::clone(&case.facts),
            }),
            case: Guarded(case),
        })))
    }

    /// Records a UN follow-up action on a case (res. 2589 §4(b)).
    async fn record_follow_up_action(
        &self,
        ctx: &Context<'_>,
        case_id: ID,
        expected_version: Option<i32>,
        input: FollowUpActionInput,
    ) -> Result<Option<Guarded<RecordFollowUpActionPayload>>> {
        let actor = super::actor(ctx);
        target(ctx, &case_id).await?;
        let action = NewFollowUp {
            kind: input.kind,
            description: text("description", &input.description, 10_000)?,
            taken_on: not_future("takenOn", input.taken_on.0, Utc::now().date_naive())?,
        };
        let record = services(ctx)
            .store
            .add_follow_up(&case_id, expected_version.map(i64::from), action, &actor)
            .await
            .map_err(store_err)?;
        tracing::info!(case = %case_id.0, operation = "recordFollowUpAction", "Follow-up action recorded");
        audit_write(ctx, WriteOperation::RecordFollowUpAction, Some(&case_id));
        let case = reload(ctx, &case_id).await?;
        Ok(Some(Guarded(RecordFollowUpActionPayload {
            follow_up_action: Guarded(FollowUpAction {
                record,
                facts: Arc::clone(&case.facts),
            }),
            case: Guarded(case),
        })))
    }

    /// Records capacity-building assistance offered to a host state (res. 2589 §5).
    async fn record_assistance(
        &self,
        ctx: &Context<'_>,
        input: AssistanceInput,
    ) -> Result<Option<Guarded<CapacityBuildingAssistance>>> {
        let actor = super::actor(ctx);
        let period_start = input.period_start.map(|d| d.0);
        let period_end = input.period_end.map(|d| d.0);
        if let (Some(s), Some(e)) = (period_start, period_end) {
            if s > e {
                return Err(gql_error(
                    ErrorCode::InvalidDateRange,
                    "periodStart is after periodEnd",
                ));
            }
        }
        let record = NewAssistance {
            host_state: country("hostState", &input.host_state)?,
            kind: input.kind,
            provider: text("provider", &input.provider, 200)?,
            status: input.status,
            period_start,
            period_end,
            description: opt_text("description", &input.description, 10_000)?,
            case_ids: input
                .case_ids
                .unwrap_or_default()
                .into_iter()
                .map(|id| id.0)
                .collect(),
        };
        let record = services(ctx)
            .store
            .insert_assistance(record, &actor)
            .await
            .map_err(store_err)?;
        tracing::info!(assistance = %record.id, operation = "recordAssistance", "Assistance recorded");
        audit_write(ctx, WriteOperation::RecordAssistance, None);
        Ok(Some(Guarded(CapacityBuildingAssistance(record))))
    }

    /// Designates (or, with `focalPoint: null`, clears) a mission's focal point for safety and
    /// security cases (res. 2589 §9).
    async fn set_mission_focal_point(
        &self,
        ctx: &Context<'_>,
        mission: String,
        focal_point: Option<FocalPointInput>,
    ) -> Result<Option<Guarded<Mission>>> {
        let actor = super::actor(ctx);
        let focal_point = match focal_point {
            Some(f) => Some(crate::store::FocalPoint {
                name: text("focalPoint.name", &f.name, 200)?,
                email: f.email.as_deref().map(email).transpose()?,
            }),
            None => None,
        };
        let record = services(ctx)
            .store
            .set_focal_point(mission.trim(), focal_point)
            .await
            .map_err(store_err)?;
        tracing::info!(mission = %record.code, operation = "setMissionFocalPoint", "Focal point set");
        let _ = actor;
        audit_write(ctx, WriteOperation::SetFocalPoint, None);
        Ok(Some(Guarded(Mission(record))))
    }

    /// A Member State submits information on a case it is concerned with (res. 2589 §6). It is
    /// held for review by a UN case officer before it enters the record.
    async fn submit_case_information(
        &self,
        ctx: &Context<'_>,
        case_id: ID,
        content: String,
    ) -> Result<Option<Guarded<Submission>>> {
        let actor = super::actor(ctx);
        let content = text("content", &content, 20_000)?;
        // Only a case the state is concerned with: an invisible case is "not found".
        let case = target(ctx, &case_id).await?;
        let organisation = super::viewpoint(ctx).principal.organisation.to_string();
        let record = services(ctx)
            .store
            .insert_submission(&case_id, &organisation, &actor, &content)
            .await
            .map_err(store_err)?;
        tracing::info!(case = %case_id.0, operation = "submitCaseInformation", "Submission received");
        audit_write(ctx, WriteOperation::SubmitCaseInformation, Some(&case_id));
        Ok(Some(Guarded(Submission {
            record,
            facts: Arc::clone(&case.facts),
        })))
    }

    /// A UN case officer accepts (into the record) or rejects a pending submission.
    async fn review_submission(
        &self,
        ctx: &Context<'_>,
        id: ID,
        accept: bool,
        note: Option<String>,
    ) -> Result<Option<Guarded<Submission>>> {
        let actor = super::actor(ctx);
        let note = opt_text("note", &note, 5_000)?;
        let record = services(ctx)
            .store
            .review_submission(&id, accept, note.as_deref(), &actor)
            .await
            .map_err(store_err)?;
        tracing::info!(submission = %record.id, accepted = accept, operation = "reviewSubmission", "Submission reviewed");
        audit_write(ctx, WriteOperation::ReviewSubmission, Some(&record.case_id));
        let case = reload(ctx, &record.case_id).await?;
        Ok(Some(Guarded(Submission {
            record,
            facts: Arc::clone(&case.facts),
        })))
    }

    /// Links a national case-file reference to a case, so that host-state connectors can find it.
    async fn link_national_reference(
        &self,
        ctx: &Context<'_>,
        case_id: ID,
        expected_version: Option<i32>,
        input: NationalReferenceInput,
    ) -> Result<Option<Guarded<LinkNationalReferencePayload>>> {
        let actor = super::actor(ctx);
        target(ctx, &case_id).await?;
        let link = NewNationalReference {
            state: country("state", &input.state)?,
            authority: text("authority", &input.authority, 300)?,
            reference: reference("reference", &input.reference)?,
        };
        let record = services(ctx)
            .store
            .link_national_reference(&case_id, expected_version.map(i64::from), link, &actor)
            .await
            .map_err(store_err)?;
        tracing::info!(case = %case_id.0, operation = "linkNationalReference", "National reference linked");
        audit_write(ctx, WriteOperation::LinkNationalReference, Some(&case_id));
        let case = reload(ctx, &case_id).await?;
        Ok(Some(Guarded(LinkNationalReferencePayload {
            national_reference: Guarded(NationalReference {
                record,
                facts: Arc::clone(&case.facts),
            }),
            case: Guarded(case),
        })))
    }
}

impl Protected for MutationRoot {}
impl Protected for AddVictimPayload {}
impl Protected for RecordFollowUpActionPayload {}
impl Protected for LinkNationalReferencePayload {}
