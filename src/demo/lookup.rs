//! Act 1: holders register that they know Lotte; the police ask who knows her.

use crate::proto::v1 as pb;

use super::cast::{CAW, CGG, OCMW, POLICE};
use super::narrate::allowed;
use super::{DemoError, Story};

/// Plays act 1.
pub(crate) async fn play(story: &mut Story<'_>) -> Result<(), DemoError> {
    story.say.act(
        1,
        "Who knows Lotte? A reference lookup",
        &[
            "Lotte is known at the CAW (victim support), the OCMW (social service) and the CGG (mental",
            "health). Each registers a reference. The police may ask who knows her (protocolakkoord,",
            "art. 20 Wet 30 juli 2018); at a mental-health centre even being known is health data, so",
            "the CGG answers hit / no-hit only. Each holder registers on Lotte's written consent.",
        ],
    )?;
    let lotte = story.people.lotte.clone();
    let registrations = [
        (8, 0, CAW, "CAW-2025-4471"),
        (8, 5, OCMW, "SD-2024-18832"),
        (8, 10, CGG, "EC-2026-0091"),
    ];
    for (hour, minute, holder, file) in registrations {
        story.clock.set(hour, minute);
        // Registering is itself a disclosure that the holder knows Lotte (art. 458 Sw.), so it rests
        // on a ground: her written consent to be findable by the police, recorded by the holder.
        let step = format!("1. {holder} RecordConsent");
        story.say.step(
            holder,
            "RecordConsent",
            &format!(
                "{} agrees in writing that the police may find out she is known here",
                lotte.name
            ),
        )?;
        let expires = story.clock.now() + time::Duration::days(180);
        let mut grounds = story.wire.grounds(holder).await?;
        let consent = allowed(
            &step,
            grounds
                .record_consent(pb::RecordConsentRequest {
                    subject: lotte.subject(),
                    purpose: "protection-integrity".to_owned(),
                    recipients: vec![POLICE.to_owned()],
                    evidence: format!("signed form \"Vindbaar voor de politie\" {file}/T1"),
                    give_time: None,
                    expire_time: Some(prost_types::Timestamp {
                        seconds: expires.unix_timestamp(),
                        nanos: 0,
                    }),
                    given_by: pb::ConsentGiver::Subject as i32,
                    information_version: "folder Vindbaarheid v2 (2026)".to_owned(),
                    minor: pb::MinorCapacity::Adult as i32,
                    parents_also_consented: false,
                })
                .await,
        )?;
        story.receipt(&step, consent.receipt)?;

        let step = format!("1. {holder} RegisterReference");
        story.say.step(
            holder,
            "RegisterReference",
            &format!(
                "\"we know {}\" (own file reference {file}), on her consent",
                lotte.name
            ),
        )?;
        let mut client = story.wire.exchange(holder).await?;
        let registered = allowed(
            &step,
            client
                .register_reference(pb::RegisterReferenceRequest {
                    subject: lotte.subject(),
                    holder_reference: file.to_owned(),
                    ground: Some(pb::ReferenceGround {
                        ground: Some(pb::reference_ground::Ground::ConsentId(
                            consent.consent_id.clone(),
                        )),
                    }),
                })
                .await,
        )?;
        story.receipt(&step, registered.receipt)?;
    }

    story.clock.set(8, 45);
    let step = "1. pz-gent Lookup";
    story.say.step(
        POLICE,
        "Lookup",
        &format!("who knows {}? purpose intrafamily-violence", lotte.name),
    )?;
    let mut police = story.wire.exchange(POLICE).await?;
    let found = allowed(
        step,
        police
            .lookup(pb::LookupRequest {
                subject: lotte.subject(),
                purpose: "intrafamily-violence".to_owned(),
                justification: String::new(),
            })
            .await,
    )?;
    let mut label = "hits";
    for hit in &found.hits {
        if hit.holder.is_empty() {
            story.say.detail(
                label,
                &format!(
                    "{:<21} hit only: no holder, no contact point",
                    "(anonymous)"
                ),
            )?;
        } else {
            story
                .say
                .detail(label, &format!("{:<21} {}", hit.holder, hit.holder_name))?;
            story
                .say
                .detail("", &format!("{:<21} contact: {}", "", hit.contact_point))?;
        }
        label = "";
    }
    let hit = |party: &str| found.hits.iter().find(|h| h.holder == party);
    // The CGG registered the subject too, but only an anonymous hit may show it.
    let anonymous = found.hits.iter().filter(|h| h.holder.is_empty()).count();
    match (hit(CAW), hit(OCMW), hit(CGG), anonymous) {
        (Some(caw), Some(ocmw), None, 1)
            if !caw.contact_point.is_empty() && !ocmw.contact_point.is_empty() => {}
        _ => {
            return Err(DemoError::unexpected(
                step,
                "hits at the CAW and OCMW with contact points, and one anonymous hit for the CGG",
                format!("{} hits", found.hits.len()),
            ));
        }
    }
    let entry = story.receipt(step, found.receipt)?;
    let rules: Vec<String> = entry
        .rules
        .iter()
        .map(|r| format!("{}/{}", r.agreement, r.rule))
        .collect();
    story.say.list("rules", &rules)?;
    let obligations = super::narrate::obligations_text(entry.obligations.as_ref());
    story.say.detail("duties", &obligations)
}
