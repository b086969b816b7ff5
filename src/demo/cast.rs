//! The cast of the story: the parties and their staff, the (fictitious) people it is about, and the
//! story clock.
//!
//! Every person is invented. Their national register numbers are synthetic but valid (birth date,
//! serial number and mod-97 check, with the 2000+ rule for those born after 1999), so the gateway
//! validates them as it would real ones; the story only ever prints their pseudonyms.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::exchange::Clock;
use crate::identity::subject::check_digits;
use crate::proto::v1 as pb;

/// Politiezone Gent, cel intrafamiliaal geweld.
pub(crate) const POLICE: &str = "pz-gent";
/// CAW Oost-Vlaanderen (general welfare, victim support).
pub(crate) const CAW: &str = "caw-oost-vlaanderen";
/// OCMW Gent, social service.
pub(crate) const OCMW: &str = "ocmw-gent";
/// CGG Eclips, mental-health centre.
pub(crate) const CGG: &str = "cgg-eclips";
/// Ondersteuningscentrum Jeugdzorg (youth care).
pub(crate) const OCJ: &str = "ocj-oost-vlaanderen";
/// The public prosecutor's office, youth and family section.
pub(crate) const PARKET: &str = "parket-oost-vlaanderen";
/// Family Justice Center Oost-Vlaanderen, the case coordinator.
pub(crate) const FJC: &str = "fjc-oost-vlaanderen";
/// The supervisory body for police information.
pub(crate) const COC: &str = "coc";
/// The data-protection officer of CAW Oost-Vlaanderen.
pub(crate) const DPO_CAW: &str = "dpo-caw-oost-vlaanderen";
/// The data-protection officer of CGG Eclips.
pub(crate) const DPO_CGG: &str = "dpo-cgg-eclips";

/// The staff member who acts for a party in the story (the `ketenpoort-actor` metadata).
pub(crate) fn actor(party: &str) -> &'static str {
    match party {
        POLICE => "inp-2231",
        CAW => "mw-0117",
        OCMW => "mw-3302",
        CGG => "psy-0045",
        OCJ => "cons-0219",
        PARKET => "subst-jeugd-02",
        FJC => "casusregie-07",
        COC => "coc-insp-01",
        _ => "dpo-01",
    }
}

/// A person the story is about.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// A first name, for the narration only; it never goes over the wire as an identifier.
    pub name: &'static str,
    /// The synthetic national register number (never printed).
    number: String,
}

impl Person {
    /// A person born on `yy mm dd` with serial number `serial` (odd: male, even: female).
    fn new(name: &'static str, yymmdd: u32, serial: u32, born_2000_or_later: bool) -> Person {
        let first_nine = yymmdd * 1_000 + serial;
        let check = check_digits(first_nine, born_2000_or_later);
        Person {
            name,
            number: format!("{first_nine:09}{check:02}"),
        }
    }

    /// The person as a wire subject.
    pub fn subject(&self) -> Option<pb::Subject> {
        Some(pb::Subject {
            number: self.number.clone(),
        })
    }
}

/// The people of the story.
#[derive(Debug, Clone)]
pub(crate) struct People {
    /// A woman who suffers intrafamily violence; known at the CAW, the OCMW and the CGG.
    pub lotte: Person,
    /// Her partner; the police would like to know more about him, without any ground.
    pub marc: Person,
    /// A nine-year-old girl in youth care, in danger at home (2000+ rule).
    pub noor: Person,
    /// A young man followed by the CGG who has gone missing (2000+ rule).
    pub jonas: Person,
}

impl People {
    /// The cast.
    pub fn new() -> People {
        People {
            lotte: Person::new("Lotte", 910_412, 146, false),
            marc: Person::new("Marc", 881_103, 127, false),
            noor: Person::new("Noor", 170_921, 84, true),
            jonas: Person::new("Jonas", 40_209, 233, true),
        }
    }
}

/// The day the story is played: a Monday inside every shipped agreement's validity window
/// (the CGG lookup pilot runs until 2026-06-30).
pub(crate) const STORY_DAY: OffsetDateTime = datetime!(2026-03-16 00:00 UTC);

/// The gateway's clock during the story: pinned, and moved forward by the narrator between steps,
/// so that the story reads like one working day whatever the real date is.
#[derive(Debug, Clone)]
pub(crate) struct StoryClock(Arc<AtomicI64>);

impl StoryClock {
    /// A clock standing at the start of the story day.
    pub fn new() -> StoryClock {
        StoryClock(Arc::new(AtomicI64::new(STORY_DAY.unix_timestamp())))
    }

    /// The clock to inject into the gateway.
    pub fn clock(&self) -> Clock {
        let now = self.0.clone();
        Arc::new(move || {
            OffsetDateTime::from_unix_timestamp(now.load(Ordering::Acquire)).unwrap_or(STORY_DAY)
        })
    }

    /// Sets the clock to `hour:minute` (UTC) of the story day.
    pub fn set(&self, hour: i64, minute: i64) {
        let at = STORY_DAY + Duration::hours(hour) + Duration::minutes(minute);
        self.0.store(at.unix_timestamp(), Ordering::Release);
    }

    /// The current story time.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0.load(Ordering::Acquire)).unwrap_or(STORY_DAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::subject::SubjectNumber;

    #[test]
    fn every_person_has_a_valid_number() {
        let people = People::new();
        for person in [&people.lotte, &people.marc, &people.noor, &people.jonas] {
            let parsed = SubjectNumber::parse(&person.number);
            assert!(parsed.is_ok(), "{} has an invalid number", person.name);
        }
        let noor = SubjectNumber::parse(&people.noor.number).expect("valid");
        assert!(noor.born_2000_or_later());
    }

    #[test]
    fn the_clock_moves_only_when_told() {
        let clock = StoryClock::new();
        let gateway_clock = clock.clock();
        assert_eq!(gateway_clock(), STORY_DAY);
        clock.set(9, 30);
        assert_eq!(gateway_clock(), datetime!(2026-03-16 09:30 UTC));
    }
}
