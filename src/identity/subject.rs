//! Belgian subject numbers: the national register number (rijksregisternummer, numéro de registre
//! national) and the BIS number, validated once at the edge and then only ever pseudonymised.
//!
//! Both are eleven digits `YYMMDD SSS CC`: a birth date, a serial number of the day and two check
//! digits. The check digits are `97 − (n mod 97)`, where `n` is the first nine digits for people born
//! before 2000, and the same nine digits with a `2` in front (`2YYMMDDSSS`) for people born in 2000 or
//! later: the *2000+ rule*. The check digits are therefore the only place the century is recorded.
//!
//! A BIS number adds 20 to the month when the sex was unknown at registration and 40 when it was
//! known. A month of `00` means the birth date was (partly) unknown or the day's serials ran out,
//! and then the day digits carry no date; a day of `00` with a known month means the day is unknown.
//! Any other impossible date is rejected.
//!
//! The number is personal data. [`SubjectNumber`] never prints it (`Debug` and `Display` are
//! redacted), and [`SubjectNumberError`] only says *what* is wrong, never the digits.

use std::fmt;

use thiserror::Error;

/// Why a string is not a valid subject number; never contains the number itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SubjectNumberError {
    /// A character other than a digit or an accepted separator (`.`, `-`, space).
    #[error("a subject number may only contain digits and the separators '.', '-' and ' '")]
    InvalidCharacter,
    /// Not exactly eleven digits once separators are removed.
    #[error("a subject number has 11 digits, this one has {digits}")]
    Length {
        /// How many digits were found.
        digits: usize,
    },
    /// The check digits match neither the pre-2000 nor the 2000+ rule.
    #[error("the check digits of the subject number do not match (mod 97)")]
    CheckDigits,
    /// The month is not 00–12 (national register), 20–32 or 40–52 (BIS).
    #[error("the month of birth in the subject number is out of range")]
    Month,
    /// The day does not exist in the given month and year.
    #[error("the day of birth in the subject number does not exist in that month")]
    Day,
}

/// Which register issued the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectNumberKind {
    /// A national register number (rijksregisternummer): a resident of Belgium.
    NationalRegister,
    /// A BIS number issued by the Crossroads Bank for Social Security; `sex_known` is true when
    /// the month was increased by 40 rather than 20.
    Bis {
        /// Whether the sex was known when the number was issued.
        sex_known: bool,
    },
}

/// A validated national register or BIS number, kept as its 11 canonical digits.
///
/// `Debug` and `Display` are redacted; use [`SubjectNumber::expose_digits`] only to pseudonymise.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SubjectNumber {
    digits: [u8; 11],
    kind: SubjectNumberKind,
    born_2000_or_later: bool,
}

/// The offset that the 2000+ rule adds to the first nine digits: a `2` in front of them.
const CENTURY_2000_PREFIX: u64 = 2_000_000_000;

/// The check digits (1–97) for the first nine digits `first_nine` (0–999 999 999) of a subject
/// number, under the pre-2000 rule or the 2000+ rule.
///
/// Public so that tests and the demo can build synthetic, valid numbers.
pub fn check_digits(first_nine: u32, born_2000_or_later: bool) -> u8 {
    let base = if born_2000_or_later {
        CENTURY_2000_PREFIX
    } else {
        0
    };
    let rest = (base + u64::from(first_nine)) % 97;
    // rest < 97, so the result is in 1..=97 and fits a u8.
    (97 - rest) as u8
}

impl SubjectNumber {
    /// Parses and validates a subject number written with or without the usual separators
    /// (`85.07.30-033.28`, `85 07 30 033 28`, `85073003328`).
    pub fn parse(input: &str) -> Result<Self, SubjectNumberError> {
        let mut digits = [0u8; 11];
        let mut count = 0usize;
        for c in input.trim().chars() {
            match c {
                '0'..='9' => {
                    if count < digits.len() {
                        digits[count] = c as u8;
                    }
                    count += 1;
                }
                '.' | '-' | ' ' => {}
                _ => return Err(SubjectNumberError::InvalidCharacter),
            }
        }
        if count != digits.len() {
            return Err(SubjectNumberError::Length { digits: count });
        }
        Self::from_digits(digits)
    }

    /// Validates 11 ASCII digits.
    fn from_digits(digits: [u8; 11]) -> Result<Self, SubjectNumberError> {
        let value = |range: std::ops::Range<usize>| -> u32 {
            digits[range]
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let first_nine = value(0..9);
        let check = value(9..11);
        // 2 000 000 000 is not a multiple of 97, so at most one of the two rules can hold.
        let born_2000_or_later = if u32::from(check_digits(first_nine, false)) == check {
            false
        } else if u32::from(check_digits(first_nine, true)) == check {
            true
        } else {
            return Err(SubjectNumberError::CheckDigits);
        };

        let year = if born_2000_or_later { 2000 } else { 1900 } + value(0..2);
        let raw_month = value(2..4);
        let (kind, month) = match raw_month {
            0..=12 => (SubjectNumberKind::NationalRegister, raw_month),
            20..=32 => (SubjectNumberKind::Bis { sex_known: false }, raw_month - 20),
            40..=52 => (SubjectNumberKind::Bis { sex_known: true }, raw_month - 40),
            _ => return Err(SubjectNumberError::Month),
        };
        let day = value(4..6);
        // Month 00: the date was unknown or the day's serials ran out; the day digits then
        // carry no date. Day 00 with a known month: the day is unknown.
        if month != 0 && day != 0 && day > days_in_month(year, month) {
            return Err(SubjectNumberError::Day);
        }
        Ok(Self {
            digits,
            kind,
            born_2000_or_later,
        })
    }

    /// The canonical 11 digits, without separators. This is the personal number in clear:
    /// use it only to pseudonymise, never to log, store or put in an error.
    pub fn expose_digits(&self) -> &str {
        // Only ASCII digits are ever stored (see `parse`), so this cannot fail.
        std::str::from_utf8(&self.digits).expect("subject number digits are ASCII")
    }

    /// Whether this is a national register number or a BIS number.
    pub fn kind(&self) -> SubjectNumberKind {
        self.kind
    }

    /// Whether the check digits were computed with the 2000+ rule (born in 2000 or later).
    pub fn born_2000_or_later(&self) -> bool {
        self.born_2000_or_later
    }
}

/// Days in `month` (1–12) of `year`, with Gregorian leap years (1900 is not one, 2000 is).
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

impl fmt::Debug for SubjectNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubjectNumber")
            .field("digits", &"[redacted]")
            .field("kind", &self.kind)
            .finish()
    }
}

impl fmt::Display for SubjectNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[subject number redacted]")
    }
}

impl std::str::FromStr for SubjectNumber {
    type Err = SubjectNumberError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a valid number string from its parts (month already offset for BIS).
    fn build(yy: u32, mm: u32, dd: u32, serial: u32, born_2000: bool) -> String {
        let first_nine = yy * 10_000_000 + mm * 100_000 + dd * 1_000 + serial;
        format!("{first_nine:09}{:02}", check_digits(first_nine, born_2000))
    }

    #[test]
    fn known_numbers_parse_with_and_without_separators() {
        // Examples from the public python-stdnum documentation.
        for s in [
            "85.07.30-033.28",
            "85073003328",
            "85 07 30 033 28",
            " 85.07.30-033 28 ",
        ] {
            let n = SubjectNumber::parse(s).unwrap();
            assert_eq!(n.expose_digits(), "85073003328");
            assert_eq!(n.kind(), SubjectNumberKind::NationalRegister);
            assert!(!n.born_2000_or_later());
        }
        let n = SubjectNumber::parse("17 07 30 033 84").unwrap();
        assert!(n.born_2000_or_later());
        let bis = SubjectNumber::parse("98.47.28-997.65").unwrap();
        assert_eq!(bis.kind(), SubjectNumberKind::Bis { sex_known: true });
        let bis = SubjectNumber::parse("01 49 07 001 85").unwrap();
        assert_eq!(bis.kind(), SubjectNumberKind::Bis { sex_known: true });
        assert!(bis.born_2000_or_later());
    }

    #[test]
    fn check_digits_of_97_are_valid_and_00_never() {
        // 97 - 0 = 97: when the first nine digits are a multiple of 97 the check digits are 97,
        // so "00" can never be valid. Among 97 consecutive serials one hits that case.
        let with_97 = (1..=97)
            .map(|serial| build(85, 7, 30, serial, false))
            .find(|s| s.ends_with("97"))
            .unwrap();
        assert!(SubjectNumber::parse(&with_97).is_ok());
        let as_00 = format!("{}00", &with_97[..9]);
        assert_eq!(
            SubjectNumber::parse(&as_00),
            Err(SubjectNumberError::CheckDigits)
        );
    }

    #[test]
    fn the_2000_rule_decides_the_century() {
        let pre = build(5, 3, 1, 12, false);
        let post = build(5, 3, 1, 12, true);
        assert_ne!(pre, post);
        assert!(!SubjectNumber::parse(&pre).unwrap().born_2000_or_later());
        assert!(SubjectNumber::parse(&post).unwrap().born_2000_or_later());
    }

    #[test]
    fn the_one_single_digit_change_mod_97_misses() {
        // 2·10⁹ ≡ 6·10⁷ (mod 97): 3 February 2001 (2000+ rule) and 3 February 1907 (pre-2000)
        // differ only in the second year digit. Both are valid; the century tells them apart.
        let a = SubjectNumber::parse("01020300170").unwrap();
        let b = SubjectNumber::parse("07020300170").unwrap();
        assert!(a.born_2000_or_later());
        assert!(!b.born_2000_or_later());
    }

    #[test]
    fn leap_day_depends_on_the_century() {
        // 29 February 1900 did not exist; 29 February 2000 did.
        assert_eq!(
            SubjectNumber::parse(&build(0, 2, 29, 1, false)),
            Err(SubjectNumberError::Day)
        );
        assert!(SubjectNumber::parse(&build(0, 2, 29, 1, true)).is_ok());
        assert!(SubjectNumber::parse(&build(96, 2, 29, 1, false)).is_ok());
        assert_eq!(
            SubjectNumber::parse(&build(97, 2, 29, 1, false)),
            Err(SubjectNumberError::Day)
        );
    }

    #[test]
    fn impossible_dates_are_rejected_and_unknown_parts_allowed() {
        assert_eq!(
            SubjectNumber::parse(&build(85, 4, 31, 1, false)),
            Err(SubjectNumberError::Day)
        );
        assert_eq!(
            SubjectNumber::parse(&build(85, 1, 32, 1, false)),
            Err(SubjectNumberError::Day)
        );
        for mm in [13, 19, 33, 39, 53, 99] {
            assert_eq!(
                SubjectNumber::parse(&build(85, mm, 1, 1, false)),
                Err(SubjectNumberError::Month),
                "month {mm}"
            );
        }
        // Unknown date (00/00), unknown day (day 00), and a month-00 number whose day digits
        // count exhausted serials, for both registers.
        for (mm, dd) in [
            (0, 0),
            (7, 0),
            (0, 1),
            (0, 5),
            (20, 0),
            (40, 0),
            (27, 0),
            (52, 31),
        ] {
            let s = build(85, mm, dd, 1, false);
            assert!(SubjectNumber::parse(&s).is_ok(), "month {mm} day {dd}");
        }
        assert_eq!(
            SubjectNumber::parse(&build(85, 22, 30, 1, false)),
            Err(SubjectNumberError::Day),
            "a BIS number's month is checked after removing the offset"
        );
    }

    #[test]
    fn bis_offsets_give_the_kind() {
        let k = |mm| {
            SubjectNumber::parse(&build(90, mm, 15, 2, false))
                .unwrap()
                .kind()
        };
        assert_eq!(k(5), SubjectNumberKind::NationalRegister);
        assert_eq!(k(25), SubjectNumberKind::Bis { sex_known: false });
        assert_eq!(k(45), SubjectNumberKind::Bis { sex_known: true });
    }

    #[test]
    fn malformed_input_is_rejected_without_echoing_it() {
        assert_eq!(
            SubjectNumber::parse("8507300332"),
            Err(SubjectNumberError::Length { digits: 10 })
        );
        assert_eq!(
            SubjectNumber::parse("850730033288"),
            Err(SubjectNumberError::Length { digits: 12 })
        );
        assert_eq!(
            SubjectNumber::parse("85073003X28"),
            Err(SubjectNumberError::InvalidCharacter)
        );
        assert_eq!(
            SubjectNumber::parse("８5073003328"),
            Err(SubjectNumberError::InvalidCharacter),
            "only ASCII digits"
        );
        assert_eq!(
            SubjectNumber::parse("85073003329"),
            Err(SubjectNumberError::CheckDigits)
        );
        for bad in [
            "85073003329",
            "8507300332",
            "85073003X28",
            "85.07.30-033.00",
        ] {
            let err = SubjectNumber::parse(bad).unwrap_err();
            let text = format!("{err} {err:?}");
            assert!(!text.contains("850730"), "error text leaks digits: {text}");
        }
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let n = SubjectNumber::parse("85.07.30-033.28").unwrap();
        for text in [format!("{n}"), format!("{n:?}"), format!("{n:#?}")] {
            assert!(!text.contains("85073003328"), "{text}");
            assert!(!text.contains("033"), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    /// Parts of a valid number: (year, month as written, day, serial).
    fn valid_parts() -> impl Strategy<Value = (u32, u32, u32, u32)> {
        (1900u32..=2099, 0u32..=12, 0u32..=31, 1u32..=997, 0u8..3).prop_map(
            |(year, month, day, serial, register)| {
                let day = if month == 0 {
                    day % 10
                } else if day == 0 {
                    0
                } else {
                    1 + (day - 1) % days_in_month(year, month)
                };
                let written_month = month + [0, 20, 40][usize::from(register)];
                (year, written_month, day, serial)
            },
        )
    }

    /// Writes a number with one of the separator styles found in the wild.
    fn write_number(digits: &str, style: u8) -> String {
        match style {
            0 => digits.to_owned(),
            1 => format!(
                "{}.{}.{}-{}.{}",
                &digits[0..2],
                &digits[2..4],
                &digits[4..6],
                &digits[6..9],
                &digits[9..11]
            ),
            _ => format!(
                "{} {} {} {} {}",
                &digits[0..2],
                &digits[2..4],
                &digits[4..6],
                &digits[6..9],
                &digits[9..11]
            ),
        }
    }

    proptest! {
        #[test]
        fn every_generated_valid_number_parses(
            (year, mm, dd, serial) in valid_parts(),
            style in 0u8..3,
        ) {
            let digits = build(year % 100, mm, dd, serial, year >= 2000);
            let n = SubjectNumber::parse(&write_number(&digits, style)).unwrap();
            prop_assert_eq!(n.expose_digits(), digits.as_str());
            prop_assert_eq!(n.born_2000_or_later(), year >= 2000);
            prop_assert_eq!(
                matches!(n.kind(), SubjectNumberKind::Bis { .. }),
                mm >= 20
            );
        }

        #[test]
        fn nothing_printed_shows_the_number(
            (year, mm, dd, serial) in valid_parts(),
            input in "[0-9 .-]{0,16}",
        ) {
            let digits = build(year % 100, mm, dd, serial, year >= 2000);
            let n = SubjectNumber::parse(&digits).unwrap();
            for text in [n.to_string(), format!("{n:?}")] {
                prop_assert!(!text.chars().any(|c| c.is_ascii_digit()), "{}", text);
            }
            // Errors name at most a digit count (two digits at most), never the input.
            if let Err(e) = SubjectNumber::parse(&input) {
                let text = format!("{e} {e:?}");
                let longest_run = text
                    .split(|c: char| !c.is_ascii_digit())
                    .map(str::len)
                    .max()
                    .unwrap_or(0);
                prop_assert!(longest_run <= 2, "{}", text);
            }
        }

        /// Mod 97 catches every single-digit change with one exception that the 2000+ rule
        /// creates: 2·10⁹ ≡ 68 ≡ 6·10⁷ (mod 97), so moving the second year digit by exactly 6
        /// turns a valid number of one century into a valid number of the other
        /// (01-02-03 under 2000+ becomes 07-02-03 under 1900). Every other change fails.
        #[test]
        fn any_single_digit_change_fails_the_check(
            (year, mm, dd, serial) in valid_parts(),
            position in 0usize..11,
            delta in 1u8..10,
        ) {
            let digits = build(year % 100, mm, dd, serial, year >= 2000);
            let mut changed = digits.clone().into_bytes();
            let old = changed[position] - b'0';
            let new = (old + delta) % 10;
            changed[position] = b'0' + new;
            let changed = String::from_utf8(changed).unwrap();
            match SubjectNumber::parse(&changed) {
                Err(_) => {}
                Ok(n) => {
                    prop_assert_eq!(position, 1, "only the second year digit can slip through");
                    prop_assert_eq!(old.abs_diff(new), 6);
                    prop_assert_ne!(n.born_2000_or_later(), year >= 2000);
                }
            }
        }
    }
}
