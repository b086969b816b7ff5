//! Act 2: a 458ter case consultation on intrafamily violence. The Family Justice Center opens the
//! case; the police ask the CAW for context; the CAW answers and over-shares; the gateway strips a
//! health diagnosis and coarsens birth date and address; the police get only the minimal fields.

use pb::field_value::Kind;

use crate::proto::v1 as pb;

use super::cast::{CAW, FJC, OCMW, POLICE};
use super::narrate::{allowed, psn};
use super::{DemoError, Story};

/// The case id the coordinator gives the consultation.
pub(crate) const CASE_ID: &str = "ifg-gent-2026-031";

/// A field asked for in its most revealing allowed form.
pub(crate) fn ask(field: &str) -> pb::FieldRequest {
    pb::FieldRequest {
        field: field.to_owned(),
        form: String::new(),
    }
}

/// A supplied field value.
pub(crate) fn supply(field: &str, kind: Kind) -> pb::FieldEntry {
    pb::FieldEntry {
        field: field.to_owned(),
        value: Some(pb::FieldValue { kind: Some(kind) }),
    }
}

/// A supplied text value.
pub(crate) fn text(field: &str, value: &str) -> pb::FieldEntry {
    supply(field, Kind::Text(value.to_owned()))
}

/// A supplied enumeration value.
pub(crate) fn choice(field: &str, value: &str) -> pb::FieldEntry {
    supply(field, Kind::EnumValue(value.to_owned()))
}

/// Lotte's full address, as her holders know it.
pub(crate) fn lotte_address() -> Kind {
    Kind::Address(pb::Address {
        street: "Sleepstraat".to_owned(),
        house_number: "41 bus 2".to_owned(),
        postcode: "9000".to_owned(),
        municipality: "Gent".to_owned(),
    })
}

/// Lotte's birth date.
pub(crate) fn lotte_birth_date() -> Kind {
    Kind::Date(pb::Date {
        year: 1991,
        month: 4,
        day: 12,
    })
}

/// Plays act 2.
/// The police fetch the answer to their ticket (released fields are delivered once).
pub(crate) async fn police_get_result(
    story: &mut Story<'_>,
    police: &mut pb::exchange_client::ExchangeClient<super::wire::Stamped>,
    step: &str,
    ticket_id: &str,
) -> Result<pb::GetResultResponse, DemoError> {
    story
        .say
        .step(POLICE, "GetResult", &format!("ticket {ticket_id}"))?;
    allowed(
        step,
        police
            .get_result(pb::GetResultRequest {
                ticket_id: ticket_id.to_owned(),
                wait: None,
            })
            .await,
    )
}

pub(crate) async fn play(story: &mut Story<'_>) -> Result<(), DemoError> {
    story.say.act(
        2,
        "Casusoverleg: a 458ter case consultation on intrafamily violence",
        &[
            "After a police intervention at Lotte's home, the Family Justice Center opens a case",
            "consultation authorised by the procureur (art. 458ter Sw.), with fixed participants and",
            "purpose. Inside it the police ask the CAW for context. The CAW answers with more than it",
            "may; the gateway releases only what the agreement allows, in its least revealing form.",
        ],
    )?;
    let lotte = story.people.lotte.clone();

    story.clock.set(9, 0);
    let step = "2. fjc OpenCase";
    story.say.step(
        FJC,
        "OpenCase",
        &format!(
            "case {CASE_ID}, purpose intrafamily-violence, subject {}",
            lotte.name
        ),
    )?;
    story.say.detail(
        "",
        "participants pz-gent, caw-oost-vlaanderen, ocmw-gent, fjc-oost-vlaanderen",
    )?;
    story
        .say
        .detail("", "authorised by the procureur, ref. FJC-OVL/2023/01")?;
    let mut fjc = story.wire.grounds(FJC).await?;
    let opened = allowed(
        step,
        fjc.open_case(pb::OpenCaseRequest {
            case_id: CASE_ID.to_owned(),
            purpose: "intrafamily-violence".to_owned(),
            participants: vec![POLICE.into(), CAW.into(), OCMW.into(), FJC.into()],
            subjects: lotte.subject().into_iter().collect(),
            agreement: "casusoverleg-ifg".to_owned(),
            instrument: "pk-ovl-fjc-2023-01".to_owned(),
        })
        .await,
    )?;
    story.receipt(step, opened.receipt)?;

    story.clock.set(9, 10);
    let step = "2. pz-gent RequestContext";
    story.say.step(
        POLICE,
        "RequestContext",
        "ask caw-oost-vlaanderen for context, purpose intrafamily-violence",
    )?;
    let asked_fields = [
        "subject.name",
        "subject.birth_date",
        "subject.address",
        "safety.risk_level",
        "safety.weapons_present",
        "safety.children_in_household",
        "care.involvement",
        "care.counsellor_contact",
    ];
    let asks: Vec<String> = asked_fields.iter().map(|f| (*f).to_owned()).collect();
    story.say.list("asks", &asks)?;
    let mut police = story.wire.exchange(POLICE).await?;
    let requested = allowed(
        step,
        police
            .request_context(pb::RequestContextRequest {
                subject: lotte.subject(),
                holder: CAW.to_owned(),
                purpose: "intrafamily-violence".to_owned(),
                fields: asked_fields.iter().map(|f| ask(f)).collect(),
                justification: String::new(),
            })
            .await,
    )?;
    story.say.decision(requested.decision.as_ref())?;
    let grants = requested
        .decision
        .as_ref()
        .map(|d| d.fields.clone())
        .unwrap_or_default();
    story.say.grants("may get", &grants)?;
    story.say.detail("ticket", &requested.ticket_id)?;
    story.receipt(step, requested.receipt)?;

    story.clock.set(9, 25);
    let step = "2. caw ListIncoming";
    story
        .say
        .step(CAW, "ListIncoming", "what is waiting for us?")?;
    let mut caw = story.wire.exchange(CAW).await?;
    let incoming = allowed(
        step,
        caw.list_incoming(pb::ListIncomingRequest::default()).await,
    )?;
    let pending = incoming
        .requests
        .iter()
        .find(|r| r.ticket_id == requested.ticket_id)
        .ok_or_else(|| DemoError::unexpected(step, "the police's ticket listed", "not listed"))?;
    story.say.detail(
        "request",
        &format!(
            "from {} ({}), purpose {}, about {} (our file {})",
            pending.requester,
            pending.actor,
            pending.purpose,
            psn(&pending.subject_pseudonym),
            pending.holder_reference
        ),
    )?;
    story.say.grants("may answer", &pending.fields)?;

    story.clock.set(9, 40);
    let step = "2. caw Respond";
    story.say.step(
        CAW,
        "Respond",
        "answers from the file, and over-shares: full birth date, full address, a diagnosis",
    )?;
    let answered = allowed(
        step,
        caw.respond(pb::RespondRequest {
            weighing: None,
            ticket_id: requested.ticket_id.clone(),
            fields: vec![
                text("subject.name", "Lotte Verstraete"),
                supply("subject.birth_date", lotte_birth_date()),
                supply("subject.address", lotte_address()),
                choice("safety.risk_level", "high"),
                supply("safety.weapons_present", Kind::Flag(false)),
                supply("safety.children_in_household", Kind::Integer(2)),
                choice("care.involvement", "intensive"),
                text(
                    "care.counsellor_contact",
                    "CAW Gent, team partnergeweld, 09 265 04 90",
                ),
                text("health.diagnosis", "post-traumatic stress disorder"),
            ],
        })
        .await,
    )?;
    story
        .say
        .detail("stripped", &answered.stripped_fields.join(", "))?;
    story.say.released("released", &answered.released)?;
    if !answered
        .stripped_fields
        .iter()
        .any(|f| f == "health.diagnosis")
    {
        return Err(DemoError::unexpected(
            step,
            "health.diagnosis stripped",
            answered.stripped_fields.join(", "),
        ));
    }
    story.receipt(step, answered.receipt)?;

    story.clock.set(9, 45);
    let step = "2. pz-gent GetResult";
    let result = police_get_result(story, &mut police, step, &requested.ticket_id).await?;
    let state = pb::TicketState::try_from(result.state)
        .map(|s| s.as_str_name())
        .unwrap_or("unknown");
    story.say.detail("state", state)?;
    story.say.released("police see", &result.released)?;
    let form = |field: &str| {
        result
            .released
            .iter()
            .find(|r| r.field == field)
            .map(|r| r.form.as_str())
    };
    if result.state != pb::TicketState::Answered as i32
        || form("health.diagnosis").is_some()
        || form("subject.address") != Some("municipality")
        || form("subject.birth_date") != Some("year")
    {
        return Err(DemoError::unexpected(
            step,
            "an answer with the address as municipality, the birth date as year and no diagnosis",
            format!("{state} with {} fields", result.released.len()),
        ));
    }
    story.receipt(step, result.receipt)?;
    Ok(())
}
