//! Act 6: necessity (noodtoestand). A young man followed by the CAW has gone missing; the police ask
//! the CAW what helps to find him, with a written justification. The CAW decides, and answers only
//! with its own written weighing. Allowed, flagged for review by the CAW's DPO, kept 7 days.

use tonic::Code;

use crate::proto::v1 as pb;

use super::case::{ask, choice, police_get_result, text};
use super::cast::{CAW, POLICE};
use super::narrate::{allowed, psn, refused};
use super::{DemoError, Story};

/// The written weighing of interests: which danger, why urgent, why no other means.
const JUSTIFICATION: &str = "Jonas (22) left a farewell message last night and has not been seen \
     since 23:00. His family fears suicide. Phone location and searches of known places gave nothing; \
     his counsellor may know where he goes or who he trusts.";

/// The CAW's own weighing: the holder decides, and writes down why.
fn weighing() -> pb::Weighing {
    pb::Weighing {
        danger: "A farewell message and a night outside at minus five: a real and imminent danger \
                 to his life."
            .to_owned(),
        no_other_way:
            "The police searched his phone location and the places his family knows; only \
                       we know where he goes when he is in crisis."
                .to_owned(),
        proportionality:
            "We release his phone number, our counsellor's contact and where he tends \
                          to go, nothing of his file or his history."
                .to_owned(),
    }
}

/// The fields the police ask for.
const FIELDS: [&str; 4] = [
    "subject.phone",
    "care.counsellor_contact",
    "care.risk_assessment",
    "safety.risk_level",
];

/// The request, with a given justification.
fn request(story: &Story<'_>, justification: &str) -> pb::RequestContextRequest {
    pb::RequestContextRequest {
        subject: story.people.jonas.subject(),
        holder: CAW.to_owned(),
        purpose: "missing-vulnerable-person".to_owned(),
        fields: FIELDS.iter().map(|f| ask(f)).collect(),
        justification: justification.to_owned(),
    }
}

/// The CAW's answer, with or without its weighing.
fn answer(ticket_id: &str, weighing: Option<pb::Weighing>) -> pb::RespondRequest {
    pb::RespondRequest {
        weighing,
        ticket_id: ticket_id.to_owned(),
        fields: vec![
            text("subject.phone", "0486 55 21 09"),
            text(
                "care.counsellor_contact",
                "CAW Oost-Vlaanderen, crisis permanence, 09 265 04 90",
            ),
            text(
                "care.risk_assessment",
                "acute risk; often goes to the Blaarmeersen lake; trusts his sister",
            ),
            choice("safety.risk_level", "acute"),
        ],
    }
}

/// Plays act 6.
pub(crate) async fn play(story: &mut Story<'_>) -> Result<(), DemoError> {
    story.say.act(
        6,
        "Noodtoestand: a missing vulnerable person",
        &[
            "Jonas, followed by the CAW, has gone missing and may be in danger of his life. Under the",
            "state of necessity the CAW may break its secrecy if that is the only way left. The police",
            "write down why they ask; the CAW decides, and answers only with its own written weighing.",
        ],
    )?;
    let mut police = story.wire.exchange(POLICE).await?;

    story.clock.set(14, 5);
    let step = "6. pz-gent RequestContext, one line";
    story.say.step(
        POLICE,
        "RequestContext",
        "ask caw-oost-vlaanderen, purpose missing-vulnerable-person, justification \"urgent, missing\"",
    )?;
    let status = refused(
        step,
        police
            .request_context(request(story, "urgent, missing"))
            .await,
        Code::PermissionDenied,
        Some("JUSTIFICATION_REQUIRED"),
    )?;
    story.say.refusal(&status)?;

    story.clock.set(14, 12);
    let step = "6. pz-gent RequestContext, with weighing";
    story.say.step(
        POLICE,
        "RequestContext",
        "again, with the written weighing of interests",
    )?;
    story.say.detail(
        "why",
        &format!(
            "{} characters (at least 80 required)",
            JUSTIFICATION.chars().count()
        ),
    )?;
    let requested = allowed(
        step,
        police.request_context(request(story, JUSTIFICATION)).await,
    )?;
    story.say.decision(requested.decision.as_ref())?;
    let decision = requested.decision.clone().unwrap_or_default();
    story.say.grants("may get", &decision.fields)?;
    let obligations = decision.obligations.unwrap_or_default();
    if !obligations.review || obligations.retention_days != 7 {
        return Err(DemoError::unexpected(
            step,
            "review and a 7-day retention",
            super::narrate::obligations_text(Some(&obligations)),
        ));
    }
    story.receipt(step, requested.receipt)?;

    story.clock.set(14, 20);
    let step = "6. caw ListIncoming";
    story.say.step(
        CAW,
        "ListIncoming",
        "the social worker on call reads the request",
    )?;
    let mut caw = story.wire.exchange(CAW).await?;
    let incoming = allowed(
        step,
        caw.list_incoming(pb::ListIncomingRequest::default()).await,
    )?;
    let pending = incoming
        .requests
        .iter()
        .find(|r| r.ticket_id == requested.ticket_id)
        .ok_or_else(|| DemoError::unexpected(step, "the urgent request listed", "not listed"))?;
    story.say.detail(
        "request",
        &format!(
            "from {}, purpose {}, about {}",
            pending.requester,
            pending.purpose,
            psn(&pending.subject_pseudonym)
        ),
    )?;
    story
        .say
        .wrap("why", &format!("\"{}\"", pending.justification))?;
    story.say.grants("may answer", &pending.fields)?;

    if !pending.weighing_required {
        return Err(DemoError::unexpected(
            step,
            "the request to ask for the CAW's own weighing",
            "no weighing required",
        ));
    }
    story.say.detail(
        "note",
        "necessity: an answer must carry the CAW's own written weighing",
    )?;

    story.clock.set(14, 22);
    let step = "6. caw Respond without weighing";
    story.say.step(
        CAW,
        "Respond",
        "answers at once, without writing its weighing",
    )?;
    let status = refused(
        step,
        caw.respond(answer(&requested.ticket_id, None)).await,
        Code::InvalidArgument,
        None,
    )?;
    story.say.refusal(&status)?;

    story.clock.set(14, 24);
    let step = "6. caw Respond";
    story.say.step(
        CAW,
        "Respond",
        "decides to answer, with its weighing: phone, counsellor, where he goes (no file)",
    )?;
    let w = weighing();
    story.say.wrap("danger", &w.danger)?;
    story.say.wrap("only way", &w.no_other_way)?;
    story.say.wrap("measured", &w.proportionality)?;
    let answered = allowed(
        step,
        caw.respond(answer(&requested.ticket_id, Some(w))).await,
    )?;
    story.say.detail(
        "logged",
        "the justification and the weighing as salted commitments; the texts for the CAW's DPO and the COC only",
    )?;
    story.receipt(step, answered.receipt)?;

    story.clock.set(14, 25);
    let step = "6. pz-gent GetResult";
    let result = police_get_result(story, &mut police, step, &requested.ticket_id).await?;
    story.say.released("police see", &result.released)?;
    if result.released.len() != FIELDS.len() {
        return Err(DemoError::unexpected(
            step,
            format!("{} released fields", FIELDS.len()),
            result.released.len().to_string(),
        ));
    }
    story.receipt(step, result.receipt)?;
    Ok(())
}
