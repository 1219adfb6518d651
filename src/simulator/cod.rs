//! Simulated DR Congo system: a GraphQL API over the register of the military justice
//! (auditorats militaires and military courts), in French, protected by an API key.
//!
//! `POST /graphql` with `X-API-Key: <key>`; the schema (print it with [`sdl`]):
//!
//! ```graphql
//! type Query {
//!   dossiers(referencesOnu: [String!]!): [Dossier!]!   # at most 100 references
//!   dossiersParRmp(numeros: [String!]!): [Dossier!]!    # by national reference (RMP number)
//!   dossier(referenceOnu: String!): Dossier
//! }
//! ```
//!
//! A missing or wrong key gets HTTP 401 with a GraphQL error body.

use super::COD_DEMO_API_KEY;
use async_graphql::{EmptyMutation, EmptySubscription, Object, Result, Schema, SimpleObject};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// Most references accepted in one query.
pub const MAX_BATCH: usize = 100;

/// A case file of the military justice.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[serde(deny_unknown_fields)]
pub struct Dossier {
    /// Référence de l'affaire à l'ONU (ex. `MONUSCO-20171207`).
    pub reference_onu: String,
    /// Numéro au registre du ministère public (RMP) de l'auditorat.
    pub numero_rmp: String,
    /// Numéro au rôle pénal (RP), une fois la juridiction saisie.
    pub numero_rp: Option<String>,
    /// Auditorat militaire en charge.
    pub auditorat: String,
    /// Juridiction saisie.
    pub juridiction: Option<Juridiction>,
    /// État actuel de la procédure.
    pub etat: String,
    /// Étapes datées de la procédure.
    pub historique: Vec<Etape>,
    /// Préventions (qualifications retenues).
    pub preventions: Vec<String>,
    /// Prévenus.
    pub prevenus: Vec<Prevenu>,
    /// Prochaine audience (AAAA-MM-JJ).
    pub prochaine_audience: Option<String>,
    /// Dernière mise à jour du dossier (RFC 3339).
    pub mis_a_jour: Option<String>,
    /// Classification du dossier.
    pub classification: Option<String>,
}

/// A court.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[serde(deny_unknown_fields)]
pub struct Juridiction {
    /// Nom.
    pub nom: String,
    /// Catégorie (juridiction militaire, juridiction civile…).
    pub categorie: String,
}

/// One dated step.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[serde(deny_unknown_fields)]
pub struct Etape {
    /// Étape.
    pub etat: String,
    /// Date (AAAA-MM-JJ).
    pub date: Option<String>,
}

/// A defendant before a military court.
#[derive(Debug, Clone, Deserialize, SimpleObject)]
#[serde(deny_unknown_fields)]
pub struct Prevenu {
    /// Identité (dans la démonstration, un nom d'emprunt).
    pub identite: String,
    /// Situation.
    pub situation: String,
    /// Jugé par défaut.
    pub par_defaut: bool,
    /// Décision.
    pub decision: Option<String>,
    /// Peine.
    pub peine: Option<String>,
}

/// Parses the fixture's `dossiers` array.
pub fn parse(items: Vec<Value>) -> Result<Vec<Dossier>, String> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| serde_json::from_value(v).map_err(|e| format!("dossier {i}: {e}")))
        .collect()
}

/// The query root.
pub struct Query {
    dossiers: Arc<Vec<Dossier>>,
}

fn select(
    all: &[Dossier],
    keys: &[String],
    field: impl Fn(&Dossier) -> &str,
) -> Result<Vec<Dossier>> {
    if keys.len() > MAX_BATCH {
        return Err("trop de références dans une seule requête (100 au plus)".into());
    }
    Ok(all
        .iter()
        .filter(|d| keys.iter().any(|k| k == field(d)))
        .cloned()
        .collect())
}

#[Object]
impl Query {
    /// Les dossiers répondant à des références ONU (100 au plus).
    async fn dossiers(&self, references_onu: Vec<String>) -> Result<Vec<Dossier>> {
        select(&self.dossiers, &references_onu, |d| &d.reference_onu)
    }

    /// Les dossiers répondant à des numéros RMP (100 au plus).
    async fn dossiers_par_rmp(&self, numeros: Vec<String>) -> Result<Vec<Dossier>> {
        select(&self.dossiers, &numeros, |d| &d.numero_rmp)
    }

    /// Un dossier par référence ONU.
    async fn dossier(&self, reference_onu: String) -> Option<Dossier> {
        self.dossiers
            .iter()
            .find(|d| d.reference_onu == reference_onu)
            .cloned()
    }
}

type CodSchema = Schema<Query, EmptyMutation, EmptySubscription>;

fn schema(dossiers: Vec<Dossier>) -> CodSchema {
    Schema::build(
        Query {
            dossiers: Arc::new(dossiers),
        },
        EmptyMutation,
        EmptySubscription,
    )
    .finish()
}

/// The simulator's SDL, for its documentation.
pub fn sdl() -> String {
    schema(Vec::new()).sdl()
}

/// The routes: `POST /graphql`.
pub fn router(dossiers: Vec<Dossier>) -> Router {
    Router::new()
        .route("/graphql", post(graphql))
        .with_state(schema(dossiers))
}

async fn graphql(
    State(schema): State<CodSchema>,
    headers: HeaderMap,
    req: GraphQLRequest,
) -> Response {
    let key_ok = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|k| k == COD_DEMO_API_KEY);
    if !key_ok {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "errors": [{ "message": "clé d'API absente ou invalide" }] })),
        )
            .into_response();
    }
    GraphQLResponse::from(schema.execute(req.into_inner()).await).into_response()
}
