//! Act 4: a 458bis signal. A youth-care counsellor reports a child in serious and imminent danger to
//! the procureur, with a written justification; the same signal sent straight to the police is
//! refused as a whole.

use pb::field_value::Kind;
use tonic::Code;

use crate::proto::v1 as pb;

use super::case::{choice, supply, text};
use super::cast::{OCJ, PARKET, POLICE};
use super::narrate::{allowed, psn, refused};
use super::{DemoError, Story};

/// The counsellor's written weighing (art. 458bis asks for it; the agreement for 100+ characters).
const JUSTIFICATION: &str = "Noor (9) showed fresh injuries on her arms and back at two sessions this week and \
     says she is afraid to go home. Her mother cannot protect her; a safety plan with the family failed \
     on 12 March. We cannot avert the danger ourselves.";

/// The signal's fields, as the counsellor fills them in.
fn signal_fields() -> Vec<pb::FieldEntry> {
    vec![
        text("subject.name", "Noor Verstraete"),
        supply(
            "subject.birth_date",
            Kind::Date(pb::Date {
                year: 2017,
                month: 9,
                day: 21,
            }),
        ),
        supply(
            "subject.address",
            Kind::Address(pb::Address {
                street: "Bevrijdingslaan".to_owned(),
                house_number: "7".to_owned(),
                postcode: "9000".to_owned(),
                municipality: "Gent".to_owned(),
            }),
        ),
        choice("signal.offence_category", "homicide-bodily-harm"),
        choice("signal.vulnerability_ground", "minor"),
        choice("signal.danger_branch", "imminent-danger-victim"),
        supply("signal.holder_cannot_protect", Kind::Flag(true)),
        text("signal.justification", JUSTIFICATION),
        choice("safety.risk_level", "acute"),
        supply("safety.children_in_household", Kind::Integer(3)),
        text(
            "care.counsellor_contact",
            "OCJ Oost-Vlaanderen, permanentie, 09 269 29 00",
        ),
    ]
}

/// The signal to `recipient`.
fn share_request(story: &Story<'_>, recipient: &str) -> pb::ShareRequest {
    pb::ShareRequest {
        subject: story.people.noor.subject(),
        recipient: recipient.to_owned(),
        purpose: "child-abuse".to_owned(),
        fields: signal_fields(),
        justification: JUSTIFICATION.to_owned(),
        forms: Vec::new(),
    }
}

/// Plays act 4.
pub(crate) async fn play(story: &mut Story<'_>) -> Result<(), DemoError> {
    story.say.act(
        4,
        "Melding 458bis: a signal to the procureur, and only to the procureur",
        &[
            "A counsellor of youth care (OCJ) sees a nine-year-old in serious and imminent danger that",
            "she cannot avert herself. Art. 458bis Sw. lets her inform the procureur des Konings, and",
            "only him, with a written weighing. The same signal sent straight to the police is refused.",
        ],
    )?;

    story.clock.set(11, 15);
    let step = "4. ocj Share to parket";
    story.say.step(
        OCJ,
        "Share",
        "signal to parket-oost-vlaanderen, purpose child-abuse, with justification",
    )?;
    story.say.detail(
        "why",
        &format!(
            "{} characters of written weighing (at least 100 required)",
            JUSTIFICATION.chars().count()
        ),
    )?;
    let request = share_request(story, PARKET);
    let mut ocj = story.wire.exchange(OCJ).await?;
    let shared = allowed(step, ocj.share(request).await)?;
    story.say.decision(shared.decision.as_ref())?;
    let grants = shared
        .decision
        .as_ref()
        .map(|d| d.fields.clone())
        .unwrap_or_default();
    story.say.grants("sent", &grants)?;
    let review = shared
        .decision
        .as_ref()
        .and_then(|d| d.obligations.as_ref())
        .is_some_and(|o| o.review);
    if !review {
        return Err(DemoError::unexpected(
            step,
            "the signal flagged for review",
            "no review flag",
        ));
    }
    story.receipt(step, shared.receipt)?;

    story.clock.set(11, 20);
    let step = "4. parket ListInbox";
    story.say.step(
        PARKET,
        "ListInbox",
        "the youth magistrate on duty reads the signal",
    )?;
    let mut parket = story.wire.exchange(PARKET).await?;
    let inbox = allowed(
        step,
        parket.list_inbox(pb::ListInboxRequest::default()).await,
    )?;
    let signal = inbox
        .signals
        .iter()
        .find(|s| s.signal_id == shared.signal_id)
        .ok_or_else(|| DemoError::unexpected(step, "the signal in the inbox", "absent"))?;
    story.say.detail(
        "signal",
        &format!(
            "{} from {}, about {}",
            signal.signal_id,
            signal.sender,
            psn(&signal.subject_pseudonym)
        ),
    )?;
    let fields: Vec<String> = signal.released.iter().map(|r| r.field.clone()).collect();
    story.say.list("fields", &fields)?;
    story
        .say
        .wrap("why", &format!("\"{}\"", signal.justification))?;

    story.clock.set(11, 22);
    let step = "4. parket Acknowledge";
    story.say.step(
        PARKET,
        "Acknowledge",
        "received; the parket takes it from here, the gateway deletes the payload",
    )?;
    let acknowledged = allowed(
        step,
        parket
            .acknowledge(pb::AcknowledgeRequest {
                signal_id: shared.signal_id.clone(),
            })
            .await,
    )?;
    story.receipt(step, acknowledged.receipt)?;

    story.clock.set(11, 25);
    let step = "4. ocj Share to pz-gent";
    story.say.step(
        OCJ,
        "Share",
        "the same signal straight to pz-gent (art. 458bis does not allow this)",
    )?;
    let request = share_request(story, POLICE);
    let status = refused(
        step,
        ocj.share(request).await,
        Code::PermissionDenied,
        Some("FORBIDDEN"),
    )?;
    story.say.refusal(&status)?;
    story
        .say
        .detail("rule", "melding-458bis/nooit-melding-naar-politie (forbid)")?;
    Ok(())
}
