//! Data loaders: every list field of a page of cases is fetched in one store query per field,
//! whatever the page size.

use crate::store::{
    AssistanceRecord, CaseRecord, FollowUpRecord, MissionRecord, NationalReferenceRecord, Store,
    VictimRecord,
};
use async_graphql::dataloader::Loader;
use std::collections::HashMap;
use std::sync::Arc;

/// Loads store records in batches. One per request, so nothing is cached across principals.
pub struct StoreLoader {
    pub(crate) store: Arc<dyn Store>,
}

/// Key: a mission by code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MissionKey(pub String);
/// Key: a case by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CaseKey(pub String);
/// Key: the victims of a case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VictimsOf(pub String);
/// Key: the follow-up actions of a case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FollowUpsOf(pub String);
/// Key: the national references of a case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferencesOf(pub String);
/// Key: the submissions on a case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SubmissionsOf(pub String);

impl Loader<SubmissionsOf> for StoreLoader {
    type Value = Vec<crate::store::SubmissionRecord>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[SubmissionsOf],
    ) -> Result<HashMap<SubmissionsOf, Vec<crate::store::SubmissionRecord>>, LoadError> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let rows = self
            .store
            .submissions_by_case_ids(&ids)
            .await
            .map_err(Arc::new)?;
        Ok(group(keys, rows, |v| SubmissionsOf(v.case_id.clone())))
    }
}

/// Key: the assistance linked to a case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AssistanceOf(pub String);

type LoadError = Arc<crate::store::StoreError>;

fn group<K: std::hash::Hash + Eq + Clone, V>(
    keys: &[K],
    items: Vec<V>,
    key_of: impl Fn(&V) -> K,
) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = keys.iter().cloned().map(|k| (k, Vec::new())).collect();
    for item in items {
        map.entry(key_of(&item)).or_default().push(item);
    }
    map
}

impl Loader<MissionKey> for StoreLoader {
    type Value = MissionRecord;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[MissionKey],
    ) -> Result<HashMap<MissionKey, MissionRecord>, LoadError> {
        let codes: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let missions = self
            .store
            .missions_by_codes(&codes)
            .await
            .map_err(Arc::new)?;
        Ok(missions
            .into_iter()
            .map(|m| (MissionKey(m.code.to_string()), m))
            .collect())
    }
}

impl Loader<CaseKey> for StoreLoader {
    type Value = CaseRecord;
    type Error = LoadError;

    async fn load(&self, keys: &[CaseKey]) -> Result<HashMap<CaseKey, CaseRecord>, LoadError> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let cases = self.store.cases_by_ids(&ids).await.map_err(Arc::new)?;
        Ok(cases
            .into_iter()
            .map(|c| (CaseKey(c.id.clone()), c))
            .collect())
    }
}

impl Loader<VictimsOf> for StoreLoader {
    type Value = Vec<VictimRecord>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[VictimsOf],
    ) -> Result<HashMap<VictimsOf, Vec<VictimRecord>>, LoadError> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let rows = self
            .store
            .victims_by_case_ids(&ids)
            .await
            .map_err(Arc::new)?;
        Ok(group(keys, rows, |v| VictimsOf(v.case_id.clone())))
    }
}

impl Loader<FollowUpsOf> for StoreLoader {
    type Value = Vec<FollowUpRecord>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[FollowUpsOf],
    ) -> Result<HashMap<FollowUpsOf, Vec<FollowUpRecord>>, LoadError> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let rows = self
            .store
            .follow_ups_by_case_ids(&ids)
            .await
            .map_err(Arc::new)?;
        Ok(group(keys, rows, |v| FollowUpsOf(v.case_id.clone())))
    }
}

impl Loader<ReferencesOf> for StoreLoader {
    type Value = Vec<NationalReferenceRecord>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[ReferencesOf],
    ) -> Result<HashMap<ReferencesOf, Vec<NationalReferenceRecord>>, LoadError> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let rows = self
            .store
            .national_references_by_case_ids(&ids)
            .await
            .map_err(Arc::new)?;
        Ok(group(keys, rows, |v| ReferencesOf(v.case_id.clone())))
    }
}

impl Loader<AssistanceOf> for StoreLoader {
    type Value = Vec<AssistanceRecord>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[AssistanceOf],
    ) -> Result<HashMap<AssistanceOf, Vec<AssistanceRecord>>, LoadError> {
        let ids: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        let rows = self
            .store
            .assistance_by_case_ids(&ids)
            .await
            .map_err(Arc::new)?;
        let grouped = group(keys, rows, |(case_id, _)| AssistanceOf(case_id.clone()));
        Ok(grouped
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(|(_, a)| a).collect()))
            .collect())
    }
}

/// Results fetched ahead by a list resolver (`cases`) for the nested fields its selection asks
/// for, in one batched query per field. The data loader alone batches by a short timer, which
/// a slow page can outlast; fetching ahead makes the number of queries per page a constant.
/// One per request, and only list queries fill it, so a mutation never reads from it.
#[derive(Default)]
pub struct Prefetched {
    pub(crate) missions: Slot<MissionKey, MissionRecord>,
    pub(crate) victims: Slot<VictimsOf, Vec<VictimRecord>>,
    pub(crate) follow_ups: Slot<FollowUpsOf, Vec<FollowUpRecord>>,
    pub(crate) references: Slot<ReferencesOf, Vec<NationalReferenceRecord>>,
    pub(crate) assistance: Slot<AssistanceOf, Vec<AssistanceRecord>>,
    pub(crate) proceedings: Slot<super::proceedings::ProceedingsKey, crate::connectors::Lookup>,
}

/// Prefetched values of one key type.
pub struct Slot<K, V>(std::sync::Mutex<HashMap<K, V>>);

impl<K, V> Default for Slot<K, V> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Slot<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    pub(crate) fn put_all(&self, values: HashMap<K, V>) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(values);
    }
}

/// Loads one key: from what was fetched ahead, else through the batching data loader.
pub(crate) async fn fetch<K, V>(
    loader: &async_graphql::dataloader::DataLoader<StoreLoader>,
    slot: &Slot<K, V>,
    key: K,
) -> Result<Option<V>, LoadError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    V: Send + Sync + Clone + 'static,
    StoreLoader: Loader<K, Value = V, Error = LoadError>,
{
    if let Some(v) = slot.get(&key) {
        return Ok(Some(v));
    }
    loader.load_one(key).await
}

/// Fetches many keys in one batch and keeps them for the resolvers that follow.
pub(crate) async fn prefetch<K, V>(
    loader: &async_graphql::dataloader::DataLoader<StoreLoader>,
    slot: &Slot<K, V>,
    keys: Vec<K>,
) -> Result<(), LoadError>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    V: Send + Sync + Clone + 'static,
    StoreLoader: Loader<K, Value = V, Error = LoadError>,
{
    if keys.is_empty() {
        return Ok(());
    }
    let found = loader.load_many(keys).await?;
    slot.put_all(found);
    Ok(())
}
