//! Subjects on arrival: validate the number, replace it at once by its pseudonym, and load the
//! grounds (cases, consents) recorded for that pseudonym.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{ExchangeError, Gateway};
use crate::identity::{SubjectNumber, SubjectPseudonym};
use crate::policy::{CaseGround, ConsentGround, Grounds};
use crate::proto::v1::Subject;
use crate::store::{self, CaseRecord, ConsentRecord};

/// Converts stored Unix seconds back to a time; out-of-range values fail closed as internal errors.
pub(crate) fn from_unix(seconds: i64) -> Result<OffsetDateTime, ExchangeError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| ExchangeError::Internal("stored time out of range".into()))
}

impl Gateway {
    /// Validates the subject number at `field` and returns its pseudonym. The error names only
    /// what is wrong, never the number.
    pub(crate) fn pseudonymise(
        &self,
        subject: Option<&Subject>,
        field: &str,
    ) -> Result<SubjectPseudonym, ExchangeError> {
        let number = subject.map(|s| s.number.as_str()).unwrap_or_default();
        if number.trim().is_empty() {
            return Err(ExchangeError::invalid(
                format!("{field}.number"),
                "a national register or BIS number is required",
            ));
        }
        let parsed = SubjectNumber::parse(number)
            .map_err(|e| ExchangeError::invalid(format!("{field}.number"), e.to_string()))?;
        Ok(self.inner.subjects.pseudonymise(&parsed))
    }

    /// The cases and consents recorded for the subject with pseudonym `subject` (hex), from the
    /// in-memory cache when no case or consent changed since they were last read.
    pub(crate) fn grounds_for(&self, subject: &str) -> Result<Arc<Grounds>, ExchangeError> {
        let cache = &self.inner.grounds;
        if let Some(grounds) = cache.get(subject) {
            return Ok(grounds);
        }
        let generation = cache.generation();
        let grounds = Arc::new(self.read_grounds(subject)?);
        cache.insert(subject, generation, grounds.clone());
        Ok(grounds)
    }

    /// Reads the grounds of `subject` from the store.
    fn read_grounds(&self, subject: &str) -> Result<Grounds, ExchangeError> {
        let store = &self.inner.store;
        let mut grounds = Grounds::default();
        for id in store.ids_under(&store::case_subject_prefix(subject))? {
            if let Some(case) = store.get::<CaseRecord>(&store::case_key(&id))? {
                // The policy only asks whether the exchange's subject is in the case, and these
                // grounds serve only exchanges about `subject`: keep just that one, not every
                // subject of a large case in every cached value.
                let subjects = if case.subjects.iter().any(|s| s == subject) {
                    vec![subject.to_owned()]
                } else {
                    Vec::new()
                };
                grounds.cases.push(CaseGround {
                    id: case.id,
                    agreement: case.agreement,
                    instrument: case.instrument,
                    participants: case.participants,
                    subjects,
                    purpose: case.purpose,
                    opened: from_unix(case.opened)?,
                    closed: case.closed.map(from_unix).transpose()?,
                    ends: Some(from_unix(case.ends)?),
                    renewed: case.renewed.map(from_unix).transpose()?,
                });
            }
        }
        for id in store.ids_under(&store::consent_subject_prefix(subject))? {
            if let Some(consent) = store.get::<ConsentRecord>(&store::consent_key(&id))? {
                let (given_by, capacity) = match (
                    super::convert::consent_giver(consent.given_by),
                    super::convert::capacity(consent.minor),
                ) {
                    (Some(g), Some(c)) => (g, c),
                    _ => (
                        crate::policy::ConsentGiver::Subject,
                        crate::policy::Capacity::NotCapable,
                    ),
                };
                grounds.consents.push(ConsentGround {
                    id: consent.id,
                    subject: consent.subject,
                    purpose: consent.purpose,
                    recipients: consent.recipients,
                    given: from_unix(consent.given)?,
                    expires: from_unix(consent.expires)?,
                    revoked: consent.revoked.map(from_unix).transpose()?,
                    evidence: consent.evidence,
                    // A stored consent without a known giver and capacity counts as not lawfully
                    // given (the subject for a minor who cannot consent alone): it never
                    // satisfies a consent condition (fail closed).
                    given_by,
                    capacity,
                    parents_also: consent.parents_also,
                });
            }
        }
        Ok(grounds)
    }
}

impl From<crate::store::StoreError> for ExchangeError {
    fn from(error: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match error {
            StoreError::Audit(e) => ExchangeError::Unavailable(e.to_string()),
            StoreError::PayloadKeys(e) => ExchangeError::KeysUnavailable(e.to_string()),
            StoreError::Unreadable { owner } => ExchangeError::PayloadUnreadable {
                kind: owner.kind.as_str(),
                id: owner.id,
            },
            other => ExchangeError::Internal(other.to_string()),
        }
    }
}
