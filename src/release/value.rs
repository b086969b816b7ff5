//! Typed field values as a holder supplies them, and the values a release produces.

use std::collections::BTreeMap;
use std::fmt;

use time::Date;

use crate::policy::FieldType;

/// A postal address.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Street name.
    pub street: String,
    /// House number (with box, if any).
    pub house_number: String,
    /// Postcode.
    pub postcode: String,
    /// Municipality.
    pub municipality: String,
}

// Addresses are personal data: Debug never prints them.
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Address(..)")
    }
}

/// A typed value of one field.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// Free text.
    Text(String),
    /// A calendar date.
    Date(Date),
    /// A whole number.
    Integer(i64),
    /// A flag.
    Flag(bool),
    /// An enum value.
    Enum(String),
    /// A postal address.
    Address(Address),
}

impl Value {
    /// The catalogue type this value has.
    pub fn ty(&self) -> FieldType {
        match self {
            Value::Text(_) => FieldType::Text,
            Value::Date(_) => FieldType::Date,
            Value::Integer(_) => FieldType::Integer,
            Value::Flag(_) => FieldType::Flag,
            Value::Enum(_) => FieldType::Enum,
            Value::Address(_) => FieldType::Address,
        }
    }
}

// Values are personal data: Debug shows the type only, so a stray `{:?}` cannot leak them.
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value::{}(..)", self.ty())
    }
}

/// A holder's record: field id → value.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Record(pub BTreeMap<String, Value>);

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A released value, after its transform.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum ReleasedValue {
    /// Text: kept text, initials, a pseudonym, `YYYY-MM`, `YYYY`, an age band, a postcode or a municipality.
    Text(String),
    /// A kept date.
    Date(Date),
    /// A kept integer.
    Integer(i64),
    /// A kept flag, or `presence`.
    Flag(bool),
    /// A kept enum value.
    Enum(String),
    /// A kept address.
    Address(Address),
}

impl fmt::Debug for ReleasedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReleasedValue(..)")
    }
}

/// The plain rendering, for the recipient (never for logs).
impl fmt::Display for ReleasedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleasedValue::Text(s) | ReleasedValue::Enum(s) => f.write_str(s),
            ReleasedValue::Date(d) => write!(
                f,
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            ),
            ReleasedValue::Integer(i) => write!(f, "{i}"),
            ReleasedValue::Flag(b) => write!(f, "{b}"),
            ReleasedValue::Address(a) => write!(
                f,
                "{} {}, {} {}",
                a.street, a.house_number, a.postcode, a.municipality
            ),
        }
    }
}
