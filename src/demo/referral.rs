//! Act 3: a warm referral (doorverwijzing) with consent: the police record Lotte's consent and
//! share minimal contact details with the OCMW, which reads its inbox and acknowledges.

use time::Duration;

use crate::proto::v1 as pb;

use super::case::{choice, lotte_address, lotte_birth_date, supply, text};
use super::cast::{OCMW, POLICE};
use super::narrate::{allowed, psn};
use super::{DemoError, Story};

/// How long Lotte's consent runs.
const CONSENT_DAYS: i64 = 90;

/// Plays act 3.
pub(crate) async fn play(story: &mut Story<'_>) -> Result<(), DemoError> {
    story.say.act(
        3,
        "Doorverwijzing: a referral to the OCMW with consent",
        &[
            "Lotte has to leave the family home. She agrees, on the police's referral form, that the",
            "OCMW contacts her about housing. The consent is specific (purpose, recipient), informed,",
            "free, revocable and time-bound; without it the referral would be refused.",
        ],
    )?;
    let lotte = story.people.lotte.clone();

    story.clock.set(10, 30);
    let step = "3. pz-gent RecordConsent";
    story.say.step(
        POLICE,
        "RecordConsent",
        &format!(
            "{} consents: purpose referral-assistance, recipient ocmw-gent, {CONSENT_DAYS} days",
            lotte.name
        ),
    )?;
    story.say.detail(
        "evidence",
        "signed form \"Doorverwijzing naar hulp\" 2026/0316-07",
    )?;
    let expires = story.clock.now() + Duration::days(CONSENT_DAYS);
    let mut grounds = story.wire.grounds(POLICE).await?;
    let consent = allowed(
        step,
        grounds
            .record_consent(pb::RecordConsentRequest {
                subject: lotte.subject(),
                purpose: "referral-assistance".to_owned(),
                recipients: vec![OCMW.to_owned()],
                evidence: "signed form \"Doorverwijzing naar hulp\" 2026/0316-07".to_owned(),
                give_time: None,
                expire_time: Some(prost_types::Timestamp {
                    seconds: expires.unix_timestamp(),
                    nanos: 0,
                }),
                given_by: pb::ConsentGiver::Subject as i32,
                information_version: "folder Doorverwijzing v4 (2026)".to_owned(),
                minor: pb::MinorCapacity::Adult as i32,
                parents_also_consented: false,
            })
            .await,
    )?;
    story.say.detail("consent", &consent.consent_id)?;
    story.receipt(step, consent.receipt)?;

    story.clock.set(10, 35);
    let step = "3. pz-gent Share";
    story.say.step(
        POLICE,
        "Share",
        "refer to ocmw-gent, purpose referral-assistance (also sends the address: not agreed)",
    )?;
    let mut police = story.wire.exchange(POLICE).await?;
    let shared = allowed(
        step,
        police
            .share(pb::ShareRequest {
                subject: lotte.subject(),
                recipient: OCMW.to_owned(),
                purpose: "referral-assistance".to_owned(),
                fields: vec![
                    text("subject.name", "Lotte Verstraete"),
                    supply("subject.birth_date", lotte_birth_date()),
                    supply("subject.address", lotte_address()),
                    text("referral.contact_phone", "0470 12 34 56"),
                    choice("referral.reason", "housing"),
                    choice("referral.preferred_language", "nl"),
                ],
                justification: String::new(),
                forms: Vec::new(),
            })
            .await,
    )?;
    story.say.decision(shared.decision.as_ref())?;
    let grants = shared
        .decision
        .as_ref()
        .map(|d| d.fields.clone())
        .unwrap_or_default();
    story.say.grants("sent", &grants)?;
    story
        .say
        .detail("stripped", &shared.stripped_fields.join(", "))?;
    if !shared
        .stripped_fields
        .iter()
        .any(|f| f == "subject.address")
    {
        return Err(DemoError::unexpected(
            step,
            "subject.address stripped",
            shared.stripped_fields.join(", "),
        ));
    }
    story.receipt(step, shared.receipt)?;

    story.clock.set(11, 0);
    let step = "3. ocmw ListInbox";
    story.say.step(OCMW, "ListInbox", "new referrals?")?;
    let mut ocmw = story.wire.exchange(OCMW).await?;
    let inbox = allowed(step, ocmw.list_inbox(pb::ListInboxRequest::default()).await)?;
    let signal = inbox
        .signals
        .iter()
        .find(|s| s.signal_id == shared.signal_id)
        .ok_or_else(|| DemoError::unexpected(step, "the referral in the inbox", "absent"))?;
    story.say.detail(
        "signal",
        &format!(
            "{} from {} ({}), purpose {}, about {}",
            signal.signal_id,
            signal.sender,
            signal.actor,
            signal.purpose,
            psn(&signal.subject_pseudonym)
        ),
    )?;
    story.say.released("received", &signal.released)?;
    if signal.released.iter().any(|r| r.field == "subject.address")
        || !signal
            .released
            .iter()
            .any(|r| r.field == "subject.birth_date" && r.form == "year_month")
    {
        return Err(DemoError::unexpected(
            step,
            "no address and the birth date as year_month",
            format!("{} fields", signal.released.len()),
        ));
    }

    story.clock.set(11, 2);
    let step = "3. ocmw Acknowledge";
    story.say.step(
        OCMW,
        "Acknowledge",
        "taken over by the housing desk; the gateway deletes the payload",
    )?;
    let acknowledged = allowed(
        step,
        ocmw.acknowledge(pb::AcknowledgeRequest {
            signal_id: shared.signal_id.clone(),
        })
        .await,
    )?;
    story.receipt(step, acknowledged.receipt)?;
    Ok(())
}
