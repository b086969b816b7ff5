//! Grounds: 458ter case consultations and consents, the dynamic facts policy conditions refer to.

use crate::audit::StateChange;
use crate::proto::v1::{
    AuditEntry, AuditEvent, CloseCaseRequest, CloseCaseResponse, OpenCaseRequest, OpenCaseResponse,
    Receipt, RecordConsentRequest, RecordConsentResponse, RenewCaseRequest, RenewCaseResponse,
    RevokeConsentRequest, RevokeConsentResponse,
};
use crate::store::{self, CaseRecord, ConsentRecord};

use super::convert::from_timestamp;
use super::directory::hex_bytes;
use super::{Caller, ExchangeError, Gateway, Violation, ids};
use crate::policy::PolicySet;

/// Longest reference text (authorisation, evidence) accepted.
const MAX_REFERENCE: usize = 256;

fn check_parties(
    policy: &PolicySet,
    parties: &[String],
    path: &str,
    violations: &mut Vec<Violation>,
) {
    if parties.is_empty() {
        violations.push(Violation::new(path, "name at least one party"));
    }
    for (i, p) in parties.iter().enumerate() {
        if policy.party(p).is_none() {
            violations.push(Violation::new(format!("{path}[{i}]"), "unknown party"));
        }
    }
}

fn check_purpose(policy: &PolicySet, purpose: &str, violations: &mut Vec<Violation>) {
    if policy.purpose(purpose).is_none() {
        violations.push(Violation::new("purpose", "unknown purpose"));
    }
}

/// One subject goes in an entry's subject field; several in its list, so that each subject's
/// report finds the event.
fn set_subjects(entry: &mut AuditEntry, subjects: &[String]) -> Result<(), ExchangeError> {
    match subjects {
        [only] => entry.subject_pseudonym = hex_bytes(only)?,
        all => {
            entry.subject_pseudonyms = all.iter().map(|s| hex_bytes(s)).collect::<Result<_, _>>()?
        }
    }
    Ok(())
}

impl Gateway {
    /// Commits a change of a case or consent, then ends the cached grounds' generation (also
    /// when the append failed: its state may still have reached the store).
    async fn commit_grounds(
        &self,
        entry: &AuditEntry,
        changes: Vec<StateChange>,
    ) -> Result<Receipt, ExchangeError> {
        let result = self.commit(entry, changes).await;
        self.inner.grounds.invalidate();
        result
    }

    /// Opens a case consultation under an agreement's case consultations: the agreement must
    /// name the instrument it rests on and the caller as an opener, and its purpose must be one
    /// of the agreement's case purposes (or below one). Refusals are logged.
    pub async fn open_case(
        &self,
        caller: &Caller,
        request: OpenCaseRequest,
    ) -> Result<OpenCaseResponse, ExchangeError> {
        let policy = self.policy();
        let mut violations = Vec::new();
        check_purpose(&policy, &request.purpose, &mut violations);
        check_parties(
            &policy,
            &request.participants,
            "participants",
            &mut violations,
        );
        let agreement = policy.agreement(&request.agreement);
        let consultation = agreement.and_then(|a| a.case_consultation.as_ref());
        if request.agreement.trim().is_empty() {
            violations.push(Violation::new(
                "agreement",
                "name the agreement whose case consultations this case belongs to",
            ));
        } else if consultation.is_none() {
            violations.push(Violation::new(
                "agreement",
                "not an agreement of the policy with case consultations",
            ));
        }
        if request.instrument.trim().is_empty() {
            violations.push(Violation::new(
                "instrument",
                "name the legal instrument (law, decree, ordinance or the procureur's authorisation) the case rests on",
            ));
        } else if request.instrument.chars().count() > MAX_REFERENCE {
            violations.push(Violation::new(
                "instrument",
                "must be at most 256 characters",
            ));
        }
        if !request.case_id.is_empty() && !ids::is_well_formed(&request.case_id) {
            violations.push(Violation::new(
                "case_id",
                "use lower-case letters, digits and '-'",
            ));
        }
        if request.subjects.is_empty() {
            violations.push(Violation::new("subjects", "name at least one subject"));
        }
        let mut subjects = Vec::new();
        for (i, s) in request.subjects.iter().enumerate() {
            match self.pseudonymise(Some(s), &format!("subjects[{i}]")) {
                Ok(p) => subjects.push(p.to_hex()),
                Err(ExchangeError::InvalidArgument(mut v)) => violations.append(&mut v),
                Err(other) => return Err(other),
            }
        }
        let (Some(agreement), Some(consultation), true) =
            (agreement, consultation, violations.is_empty())
        else {
            return Err(ExchangeError::InvalidArgument(violations));
        };
        subjects.sort();
        subjects.dedup();
        let mut entry = self.entry(&policy, caller, "OpenCase", AuditEvent::Grounds);
        entry.purpose = request.purpose.clone();
        entry.legal_bases = agreement.legal_basis.clone();
        // Each subject's report finds the opening of the case, or its refusal.
        set_subjects(&mut entry, &subjects)?;
        let opener = policy
            .party(&caller.party)
            .is_some_and(|p| consultation.openers.matches_party(p));
        let refusal = if !opener {
            Some("OPENER_NOT_ALLOWED")
        } else if !consultation
            .instruments
            .iter()
            .any(|i| i.id == request.instrument)
        {
            Some("INSTRUMENT_NOT_IN_AGREEMENT")
        } else if !consultation
            .purposes
            .iter()
            .any(|p| policy.purpose_within(&request.purpose, p))
        {
            Some("PURPOSE_NOT_IN_AGREEMENT")
        } else {
            None
        };
        if let Some(reason) = refusal {
            entry.verdict = crate::proto::v1::Verdict::Deny as i32;
            entry.reason_code = reason.to_owned();
            entry.detail = format!("agreement={}", agreement.id);
            let receipt = self.commit(&entry, Vec::new()).await?;
            return Err(ExchangeError::Refused {
                reason: reason.to_owned(),
                missing_ground: false,
                audit_index: receipt.index,
                missing_element: None,
            });
        }
        let now = self.now();
        let ends = now + time::Duration::days(i64::from(consultation.max_days));
        let case_id = if request.case_id.is_empty() {
            ids::new_id("case", now)?
        } else {
            request.case_id.clone()
        };
        let _guard = self.inner.locks.lock(&case_id).await;
        if self
            .inner
            .store
            .get::<CaseRecord>(&store::case_key(&case_id))?
            .is_some()
        {
            return Err(ExchangeError::Precondition {
                reason: "CASE_EXISTS".into(),
            });
        }
        let mut participants = request.participants.clone();
        participants.sort();
        participants.dedup();
        let case = CaseRecord {
            id: case_id.clone(),
            opener: caller.party.clone(),
            purpose: request.purpose.clone(),
            participants: participants.clone(),
            subjects: subjects.clone(),
            agreement: agreement.id.clone(),
            instrument: request.instrument.clone(),
            opened: now.unix_timestamp(),
            closed: None,
            ends: ends.unix_timestamp(),
            renewed: None,
        };
        let mut changes = vec![store::put(store::case_key(&case_id), &case)];
        changes.extend(
            subjects
                .iter()
                .map(|s| store::mark(store::case_subject_key(s, &case_id))),
        );
        entry.exchange_id = format!("case:{case_id}");
        entry.ground_refs = vec![format!("case:{case_id}")];
        entry.verdict = crate::proto::v1::Verdict::Allow as i32;
        entry.reason_code = "PERMITTED".to_owned();
        entry.detail = format!(
            "agreement={} instrument={} participants={} subjects={} ends={}",
            agreement.id,
            request.instrument,
            participants.join(","),
            subjects.len(),
            ends.unix_timestamp()
        );
        let receipt = self.commit_grounds(&entry, changes).await?;
        Ok(OpenCaseResponse {
            case_id,
            receipt: Some(receipt),
            end_time: Some(super::convert::timestamp(ends)),
        })
    }

    /// The case `id` when the caller opened it; NOT_FOUND otherwise, whether it exists or not.
    fn own_case(&self, caller: &Caller, id: &str) -> Result<CaseRecord, ExchangeError> {
        self.inner
            .store
            .get::<CaseRecord>(&store::case_key(id))?
            .filter(|c| c.opener == caller.party)
            .ok_or(ExchangeError::NotFound { kind: "case" })
    }

    /// An entry about `case`: its id, purpose and every subject, so that each subject's report
    /// shows what happened to the case.
    fn case_entry(
        &self,
        policy: &PolicySet,
        caller: &Caller,
        operation: &str,
        case: &CaseRecord,
    ) -> Result<AuditEntry, ExchangeError> {
        let mut entry = self.entry(policy, caller, operation, AuditEvent::Grounds);
        entry.exchange_id = format!("case:{}", case.id);
        entry.purpose = case.purpose.clone();
        entry.ground_refs = vec![format!("case:{}", case.id)];
        set_subjects(&mut entry, &case.subjects)?;
        Ok(entry)
    }

    /// Closes a case consultation; only its opener may.
    pub async fn close_case(
        &self,
        caller: &Caller,
        request: CloseCaseRequest,
    ) -> Result<CloseCaseResponse, ExchangeError> {
        if !ids::is_well_formed(&request.case_id) {
            return Err(ExchangeError::invalid("case_id", "not a case id"));
        }
        let policy = self.policy();
        let _guard = self.inner.locks.lock(&request.case_id).await;
        let mut case = self.own_case(caller, &request.case_id)?;
        if case.closed.is_some() {
            return Err(ExchangeError::Precondition {
                reason: "CASE_CLOSED".into(),
            });
        }
        case.closed = Some(self.now().unix_timestamp());
        // As at the opening: each subject's report shows that the case ended.
        let entry = self.case_entry(&policy, caller, "CloseCase", &case)?;
        let receipt = self
            .commit_grounds(&entry, vec![store::put(store::case_key(&case.id), &case)])
            .await?;
        Ok(CloseCaseResponse {
            receipt: Some(receipt),
        })
    }

    /// Renews an open case that has not lapsed, for the agreement's `max_days` from now; only its
    /// opener may.
    pub async fn renew_case(
        &self,
        caller: &Caller,
        request: RenewCaseRequest,
    ) -> Result<RenewCaseResponse, ExchangeError> {
        if !ids::is_well_formed(&request.case_id) {
            return Err(ExchangeError::invalid("case_id", "not a case id"));
        }
        let policy = self.policy();
        let _guard = self.inner.locks.lock(&request.case_id).await;
        let mut case = self.own_case(caller, &request.case_id)?;
        let now = self.now();
        let consultation = policy
            .agreement(&case.agreement)
            .and_then(|a| a.case_consultation.as_ref())
            .ok_or(ExchangeError::Precondition {
                reason: "AGREEMENT_WITHOUT_CASES".into(),
            })?;
        let lapse = time::Duration::days(i64::from(consultation.max_days));
        let since = case.renewed.unwrap_or(case.opened);
        if case.closed.is_some() {
            return Err(ExchangeError::Precondition {
                reason: "CASE_CLOSED".into(),
            });
        }
        if now.unix_timestamp() >= case.ends.min(since + lapse.whole_seconds()) {
            return Err(ExchangeError::Precondition {
                reason: "CASE_LAPSED".into(),
            });
        }
        let ends = now + lapse;
        case.renewed = Some(now.unix_timestamp());
        case.ends = ends.unix_timestamp();
        let mut entry = self.case_entry(&policy, caller, "RenewCase", &case)?;
        entry.detail = format!("ends={}", ends.unix_timestamp());
        let receipt = self
            .commit_grounds(&entry, vec![store::put(store::case_key(&case.id), &case)])
            .await?;
        Ok(RenewCaseResponse {
            end_time: Some(super::convert::timestamp(ends)),
            receipt: Some(receipt),
        })
    }

    /// Records a subject's consent obtained by the caller.
    pub async fn record_consent(
        &self,
        caller: &Caller,
        request: RecordConsentRequest,
    ) -> Result<RecordConsentResponse, ExchangeError> {
        let policy = self.policy();
        let mut violations = Vec::new();
        let subject = match self.pseudonymise(request.subject.as_ref(), "subject") {
            Ok(p) => Some(p.to_hex()),
            Err(ExchangeError::InvalidArgument(mut v)) => {
                violations.append(&mut v);
                None
            }
            Err(other) => return Err(other),
        };
        check_purpose(&policy, &request.purpose, &mut violations);
        check_parties(&policy, &request.recipients, "recipients", &mut violations);
        if request.evidence.trim().is_empty() {
            violations.push(Violation::new(
                "evidence",
                "a reference to the evidence is required",
            ));
        } else if request.evidence.chars().count() > MAX_REFERENCE {
            violations.push(Violation::new("evidence", "must be at most 256 characters"));
        }
        let given_by = super::convert::consent_giver(request.given_by);
        let capacity = super::convert::capacity(request.minor);
        match (given_by, capacity) {
            (None, _) => violations.push(Violation::new(
                "given_by",
                "say who gave the consent: the subject, a parent, a guardian or a legal representative",
            )),
            (_, None) => violations.push(Violation::new(
                "minor",
                "say whether the subject is an adult or a minor, and whether a minor can consent alone",
            )),
            (Some(g), Some(c)) if !crate::policy::lawful_consent(g, c) => {
                violations.push(Violation::new(
                    "given_by",
                    match c {
                        crate::policy::Capacity::NotCapable => {
                            "a minor who cannot consent alone needs a parent, guardian or legal representative"
                        }
                        crate::policy::Capacity::Adult => {
                            "an adult consents personally or through a legal representative"
                        }
                        _ => "a capable minor consents personally (youth-care decree)",
                    },
                ))
            }
            _ => {}
        }
        let capable_minor = matches!(
            capacity,
            Some(
                crate::policy::Capacity::PresumedCapable | crate::policy::Capacity::AssessedCapable
            )
        );
        if request.parents_also_consented && !capable_minor {
            violations.push(Violation::new(
                "parents_also_consented",
                "only for a capable minor who consents personally",
            ));
        }
        let information_version = request.information_version.trim().to_owned();
        if information_version.is_empty() {
            violations.push(Violation::new(
                "information_version",
                "name the version of the information the subject was given",
            ));
        } else if information_version.chars().count() > MAX_REFERENCE
            || information_version.chars().any(char::is_control)
        {
            violations.push(Violation::new(
                "information_version",
                "at most 256 characters, without control characters",
            ));
        }
        let now = self.now();
        let given = match request.give_time.as_ref() {
            None => Some(now),
            Some(t) => from_timestamp(t).filter(|g| *g <= now).or_else(|| {
                violations.push(Violation::new(
                    "give_time",
                    "must be a valid time, not in the future",
                ));
                None
            }),
        };
        let expires = match request.expire_time.as_ref().and_then(from_timestamp) {
            Some(e) if given.is_some_and(|g| e > g) => Some(e),
            _ => {
                violations.push(Violation::new(
                    "expire_time",
                    "required, and after give_time",
                ));
                None
            }
        };
        let (Some(subject), Some(given), Some(expires), true) =
            (subject, given, expires, violations.is_empty())
        else {
            return Err(ExchangeError::InvalidArgument(violations));
        };
        let consent_id = ids::new_id("consent", now)?;
        let mut recipients = request.recipients.clone();
        recipients.sort();
        recipients.dedup();
        let consent = ConsentRecord {
            id: consent_id.clone(),
            recorder: caller.party.clone(),
            subject: subject.clone(),
            purpose: request.purpose.clone(),
            recipients: recipients.clone(),
            evidence: request.evidence.trim().to_owned(),
            given: given.unix_timestamp(),
            expires: expires.unix_timestamp(),
            revoked: None,
            given_by: request.given_by,
            information_version,
            minor: request.minor,
            revoked_by: String::new(),
            parents_also: request.parents_also_consented,
        };
        let mut entry = self.entry(&policy, caller, "RecordConsent", AuditEvent::Grounds);
        entry.exchange_id = format!("consent:{consent_id}");
        entry.subject_pseudonym = hex_bytes(&subject)?;
        entry.purpose = request.purpose.clone();
        entry.ground_refs = vec![format!("consent:{consent_id}")];
        entry.detail = format!("recipients={}", recipients.join(","));
        let changes = vec![
            store::put(store::consent_key(&consent_id), &consent),
            store::mark(store::consent_subject_key(&subject, &consent_id)),
        ];
        let receipt = self.commit_grounds(&entry, changes).await?;
        Ok(RecordConsentResponse {
            consent_id,
            receipt: Some(receipt),
        })
    }

    /// Records that a consent was revoked: by the party that recorded it, by one of its
    /// recipients, or by any party on the subject's behalf (naming the consent's subject). Anyone
    /// else gets NOT_FOUND, whether the consent exists or not.
    pub async fn revoke_consent(
        &self,
        caller: &Caller,
        request: RevokeConsentRequest,
    ) -> Result<RevokeConsentResponse, ExchangeError> {
        if !ids::is_well_formed(&request.consent_id) {
            return Err(ExchangeError::invalid("consent_id", "not a consent id"));
        }
        let policy = self.policy();
        let on_behalf = match request.subject.as_ref() {
            Some(s) if !s.number.is_empty() => {
                Some(self.pseudonymise(Some(s), "subject")?.to_hex())
            }
            _ => None,
        };
        let _guard = self.inner.locks.lock(&request.consent_id).await;
        let mut consent = self
            .inner
            .store
            .get::<ConsentRecord>(&store::consent_key(&request.consent_id))?
            .filter(|c| {
                c.recorder == caller.party
                    || c.recipients.contains(&caller.party)
                    || on_behalf.as_ref() == Some(&c.subject)
            })
            .ok_or(ExchangeError::NotFound { kind: "consent" })?;
        if consent.revoked.is_some() {
            return Err(ExchangeError::Precondition {
                reason: "CONSENT_REVOKED".into(),
            });
        }
        consent.revoked = Some(self.now().unix_timestamp());
        consent.revoked_by = caller.party.clone();
        let mut entry = self.entry(&policy, caller, "RevokeConsent", AuditEvent::Grounds);
        entry.exchange_id = format!("consent:{}", consent.id);
        entry.subject_pseudonym = hex_bytes(&consent.subject)?;
        entry.purpose = consent.purpose.clone();
        entry.ground_refs = vec![format!("consent:{}", consent.id)];
        if caller.party != consent.recorder {
            // The recorder learns, through its own audit scope, that its consent was revoked.
            entry.counterpart_party = consent.recorder.clone();
            entry.detail = if consent.recipients.contains(&caller.party) {
                "revoked by a recipient".to_owned()
            } else {
                "revoked on the subject's behalf".to_owned()
            };
        }
        let receipt = self
            .commit_grounds(
                &entry,
                vec![store::put(store::consent_key(&consent.id), &consent)],
            )
            .await?;
        Ok(RevokeConsentResponse {
            receipt: Some(receipt),
        })
    }
}
