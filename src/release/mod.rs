//! Release: typed field values, transforms, the projection of a holder's record onto a
//! decision (stripping whatever is not allowed), and the salted commitment to the payload.

mod apply;
mod key;
mod project;
mod value;

pub use key::ReleaseKey;
pub use project::{Projection, ReleaseContext, project};
pub use value::{Address, Record, ReleasedValue, Value};
