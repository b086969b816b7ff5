//! Act 5: requests without a ground are refused with a reason code and no data: a fishing request
//! to the CGG without a case, a lookup for a purpose no agreement allows, and health data asked by
//! the police even inside the case.

use tonic::Code;

use crate::proto::v1 as pb;

use super::case::ask;
use super::cast::{CAW, CGG, POLICE};
use super::narrate::refused;
use super::{DemoError, Story};

/// Plays act 5.
pub(crate) async fn play(story: &mut Story<'_>) -> Result<(), DemoError> {
    story.say.act(
        5,
        "Visvragen: questions without a ground are refused",
        &[
            "An investigator would like to know more about Lotte's partner Marc. There is no case",
            "consultation about him and no agreement allows care data for an investigation, so the",
            "gateway refuses, says why, and never says whether anyone knows him.",
        ],
    )?;
    let marc = story.people.marc.clone();
    let mut police = story.wire.exchange(POLICE).await?;

    story.clock.set(11, 40);
    let step = "5. pz-gent RequestContext to cgg (no case)";
    story.say.step(
        POLICE,
        "RequestContext",
        &format!(
            "ask cgg-eclips about {}: involvement, risk assessment; purpose intrafamily-violence",
            marc.name
        ),
    )?;
    let status = refused(
        step,
        police
            .request_context(pb::RequestContextRequest {
                subject: marc.subject(),
                holder: CGG.to_owned(),
                purpose: "intrafamily-violence".to_owned(),
                fields: vec![ask("care.involvement"), ask("care.risk_assessment")],
                justification: String::new(),
            })
            .await,
        Code::FailedPrecondition,
        Some("CASE_REQUIRED"),
    )?;
    story.say.refusal(&status)?;

    story.clock.set(11, 42);
    let step = "5. pz-gent Lookup for an investigation";
    story.say.step(
        POLICE,
        "Lookup",
        &format!("who knows {}? purpose criminal-investigation", marc.name),
    )?;
    let status = refused(
        step,
        police
            .lookup(pb::LookupRequest {
                subject: marc.subject(),
                purpose: "criminal-investigation".to_owned(),
                justification: String::new(),
            })
            .await,
        Code::PermissionDenied,
        None,
    )?;
    story.say.refusal(&status)?;

    story.clock.set(11, 50);
    let step = "5. pz-gent RequestContext for health data";
    story.say.step(
        POLICE,
        "RequestContext",
        "inside the open case, ask caw-oost-vlaanderen for Lotte's diagnosis and risk level",
    )?;
    let status = refused(
        step,
        police
            .request_context(pb::RequestContextRequest {
                subject: story.people.lotte.subject(),
                holder: CAW.to_owned(),
                purpose: "intrafamily-violence".to_owned(),
                fields: vec![ask("health.diagnosis"), ask("safety.risk_level")],
                justification: String::new(),
            })
            .await,
        Code::PermissionDenied,
        Some("FORBIDDEN"),
    )?;
    story.say.refusal(&status)?;
    story.say.detail(
        "rule",
        "verbod-gezondheid-politie/politie-vraagt-geen-gezondheid (forbid beats the case's permit)",
    )
}
