//! `serde_json`'s token structs (`RawValue`, arbitrary-precision numbers):
//! structs with a reserved name that `serde_json` gives special meaning.
//! The canonical writer and the typed path selection hand them to
//! `serde_json::to_value`, so that they mean there what they mean in
//! `serde_json`.

use serde::ser::{self, Serialize, SerializeStruct};

/// The name prefix of `serde_json`'s token structs.
pub(crate) const SERDE_JSON_TOKEN_PREFIX: &str = "$serde_json::private::";

/// Re-emits one field of a `serde_json` token struct, for `to_value`.
pub(crate) struct TokenStruct<'a, T: ?Sized> {
    /// The token struct's name.
    pub(crate) name: &'static str,
    /// Its one field's name.
    pub(crate) key: &'static str,
    /// Its one field's value.
    pub(crate) value: &'a T,
}

impl<T: Serialize + ?Sized> Serialize for TokenStruct<'_, T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct(self.name, 1)?;
        st.serialize_field(self.key, self.value)?;
        st.end()
    }
}
