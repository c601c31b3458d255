//! Typed parameters: a call's parameter struct (`forms.rs`, also its OpenAPI schema) is filled
//! from the lenient [`Params`] through serde, so what is documented is what is decoded.
//!
//! Each field is read with the lenient accessor its type asks for (`i64` → [`Params::i64`],
//! `bool` → [`Params::bool`], `String` → [`Params::str`], `Vec<i64>` → [`Params::i64_list`],
//! JSON values and maps → [`Params::value`], [`RawText`] → [`Params::raw`]), in the order the
//! struct declares them, so the first bad or missing parameter is the one reported, with the
//! same message as before. Blank text is "not given": `None` for an `Option`, else missing.

use serde::de::{self, DeserializeOwned, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::form::{
    FormError, Params, EXPECTED_BOOLEAN, EXPECTED_INTEGER, EXPECTED_JSON, EXPECTED_NUMBER,
};

/// What a map or list sent where one value belongs is refused as.
const EXPECTED_TEXT: &str = "text, not a list or map";

impl Params {
    /// Fills the parameter struct `T` from these parameters.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, FormError> {
        T::deserialize(Struct(self))
    }
}

impl de::Error for FormError {
    /// A field type's own refusal (an enum's list of values): its message as it is.
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        FormError::Refused(msg.to_string())
    }
}

/// Text taken as sent: not trimmed, and empty counts as given (passwords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawText(pub String);

const RAW_TEXT: &str = "RawText";

impl<'de> Deserialize<'de> for RawText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = RawText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("text")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<RawText, D::Error> {
                String::deserialize(d).map(RawText)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawText, E> {
                Ok(RawText(v.to_owned()))
            }
        }
        // Field answers this name with the text as sent; other deserializers with a string.
        deserializer.deserialize_newtype_struct(RAW_TEXT, Text)
    }
}

/// A list of ids that must be sent, though it may be empty (`name=` or `name=[]` clears).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequiredIds(pub Vec<i64>);

const REQUIRED_IDS: &str = "RequiredIds";

impl<'de> Deserialize<'de> for RequiredIds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ids;
        impl<'de> Visitor<'de> for Ids {
            type Value = RequiredIds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of ids")
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<RequiredIds, D::Error> {
                Vec::deserialize(d).map(RequiredIds)
            }
        }
        // Field tells "sent empty" from "not sent" under this name.
        deserializer.deserialize_newtype_struct(REQUIRED_IDS, Ids)
    }
}

/// A list of names: `a,b` as one name, `name[]=a&name[]=b`, `name[x]=a` (the values), or a
/// JSON array; numbers and other JSON values as their text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameList(pub Vec<String>);

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let scalar = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Ok(NameList(
            match serde_json::Value::deserialize(deserializer)? {
                serde_json::Value::Array(items) => items.iter().map(scalar).collect(),
                serde_json::Value::Object(m) => m.values().map(scalar).collect(),
                other => vec![scalar(&other)],
            },
        ))
    }
}

/// The whole request: a struct whose fields are parameter names.
struct Struct<'a>(&'a Params);

impl<'de> Deserializer<'de> for Struct<'_> {
    type Error = FormError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FormError> {
        visitor.visit_map(Fields {
            params: self.0,
            names: fields.iter(),
            current: "",
        })
    }

    /// Only structs are parameter sets; anything else is a mistake in `forms.rs`.
    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, FormError> {
        Err(FormError::Malformed(
            "call parameters decode only into a struct".to_owned(),
        ))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Every declared field in declared order, given or not: a missing one is reported when its
/// turn comes, as a handler reading them one after the other would.
struct Fields<'a> {
    params: &'a Params,
    names: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = FormError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, FormError> {
        let Some(name) = self.names.next() else {
            return Ok(None);
        };
        self.current = name;
        seed.deserialize(name.into_deserializer()).map(Some)
    }

    fn next_value_seed<S: de::DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, FormError> {
        seed.deserialize(Field {
            params: self.params,
            name: self.current,
        })
    }
}

/// One parameter, read the way its field's type asks.
struct Field<'a> {
    params: &'a Params,
    name: &'static str,
}

impl Field<'_> {
    fn missing(&self) -> FormError {
        FormError::Missing(self.name.to_owned())
    }

    /// No scalar to read: missing, or sent as a map where a single value belongs.
    fn absent(&self, expected: &'static str) -> FormError {
        if self.params.given(self.name) {
            self.invalid(expected)
        } else {
            self.missing()
        }
    }

    fn invalid(&self, expected: &'static str) -> FormError {
        FormError::Invalid {
            name: self.name.to_owned(),
            expected,
        }
    }

    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FormError> {
        let n = self
            .params
            .i64(self.name)?
            .ok_or_else(|| self.absent(EXPECTED_INTEGER))?;
        // Out of the field's range (a negative id for a `u32`, say): not an integer it takes.
        visitor
            .visit_i64::<FormError>(n)
            .map_err(|_| self.invalid(EXPECTED_INTEGER))
    }

    fn number<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FormError> {
        let n = self
            .params
            .f64(self.name)?
            .ok_or_else(|| self.absent(EXPECTED_NUMBER))?;
        visitor
            .visit_f64::<FormError>(n)
            .map_err(|_| self.invalid(EXPECTED_NUMBER))
    }

    fn json<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FormError> {
        let value = self
            .params
            .value(self.name)?
            .ok_or_else(|| self.missing())?;
        value
            .deserialize_any(visitor)
            .map_err(|_| self.invalid(EXPECTED_JSON))
    }
}

impl<'de> Deserializer<'de> for Field<'_> {
    type Error = FormError;

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FormError> {
        if self.params.given(self.name) {
            visitor.visit_some(self)
        } else {
            visitor.visit_none()
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FormError> {
        let b = self
            .params
            .bool(self.name)?
            .ok_or_else(|| self.absent(EXPECTED_BOOLEAN))?;
        visitor.visit_bool(b)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.integer(v)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.number(v)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.number(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FormError> {
        let text = self
            .params
            .str(self.name)
            .ok_or_else(|| self.absent(EXPECTED_TEXT))?;
        visitor.visit_str(text)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.deserialize_str(v)
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.deserialize_str(v)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.deserialize_str(v)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, FormError> {
        let text = self
            .params
            .str(self.name)
            .ok_or_else(|| self.absent(EXPECTED_TEXT))?;
        de::value::StrDeserializer::<FormError>::new(text).deserialize_enum(name, variants, visitor)
    }

    /// Lists of integers in any of the spellings `Params::i64_list` takes; absent is empty.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, FormError> {
        let list = self.params.i64_list(self.name)?;
        visitor.visit_seq(de::value::SeqDeserializer::<_, FormError>::new(
            list.into_iter(),
        ))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, FormError> {
        if name == REQUIRED_IDS {
            let list = self.params.i64_list(self.name)?;
            if self.params.raw(self.name).is_none() && self.params.value(self.name)?.is_none() {
                return Err(self.missing());
            }
            return visitor.visit_newtype_struct(de::value::SeqDeserializer::<_, FormError>::new(
                list.into_iter(),
            ));
        }
        if name == RAW_TEXT {
            let text = self.params.raw(self.name).ok_or_else(|| self.missing())?;
            return visitor.visit_newtype_struct(text.into_deserializer());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.json(v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, FormError> {
        self.json(v)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, FormError> {
        self.json(v)
    }

    serde::forward_to_deserialize_any! {
        i128 u128 bytes byte_buf unit unit_struct tuple tuple_struct ignored_any
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::Value;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Example {
        job_id: i64,
        limit: Option<u32>,
        only_queue: Option<bool>,
        name: Option<String>,
        password: RawText,
        ids: Vec<i64>,
        updates: Option<BTreeMap<String, Value>>,
    }

    #[derive(Debug, Deserialize)]
    struct Lists {
        workgroup_id: RequiredIds,
        fields: Option<NameList>,
    }

    #[test]
    fn required_ids_tell_sent_empty_from_absent() {
        let l: Lists = parse("workgroup_id=").decode().unwrap();
        assert_eq!((l.workgroup_id, l.fields), (RequiredIds(vec![]), None));
        let l: Lists = parse("workgroup_id[]=3&workgroup_id[]=4&fields=[\"a\",7]")
            .decode()
            .unwrap();
        assert_eq!(l.workgroup_id, RequiredIds(vec![3, 4]));
        assert_eq!(l.fields, Some(NameList(vec!["a".into(), "7".into()])));
        let err = parse("fields=a").decode::<Lists>().unwrap_err();
        assert_eq!(err.to_string(), "missing required parameter 'workgroup_id'");
        let err = parse("workgroup_id=1,x").decode::<Lists>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'workgroup_id' must be an integer or a list of integers"
        );
    }

    fn parse(body: &str) -> Params {
        Params::parse(None, body.as_bytes()).unwrap()
    }

    #[test]
    fn fields_read_leniently() {
        let e: Example = parse(
            "job_id=12.0&limit=%2020%20&only_queue=on&name=%20x%20&password=%20pw%20\
             &ids[]=1&ids[]=2&updates[7][ptype]=5",
        )
        .decode()
        .unwrap();
        assert_eq!(e.job_id, 12);
        assert_eq!(e.limit, Some(20));
        assert_eq!(e.only_queue, Some(true));
        assert_eq!(e.name.as_deref(), Some("x"));
        assert_eq!(e.password, RawText(" pw ".into()));
        assert_eq!(e.ids, vec![1, 2]);
        assert_eq!(e.updates.unwrap()["7"]["ptype"], "5");
    }

    #[test]
    fn blank_is_not_given_and_refusals_name_the_first_bad_field() {
        let e: Example = parse("job_id=1&limit=null&name=&password=")
            .decode()
            .unwrap();
        assert_eq!((e.limit, e.name, e.ids.len()), (None, None, 0));
        assert_eq!(e.password, RawText(String::new()));

        let err = parse("limit=abc&password=x")
            .decode::<Example>()
            .unwrap_err();
        assert_eq!(err.to_string(), "missing required parameter 'job_id'");
        let err = parse("job_id=1&limit=abc").decode::<Example>().unwrap_err();
        assert_eq!(err.to_string(), "parameter 'limit' must be an integer");
        let err = parse("job_id=1&limit=-1").decode::<Example>().unwrap_err();
        assert_eq!(err.to_string(), "parameter 'limit' must be an integer");
        let err = parse("job_id=1").decode::<Example>().unwrap_err();
        assert_eq!(err.to_string(), "missing required parameter 'password'");
        let err = parse("job_id=1&password=&updates={bad")
            .decode::<Example>()
            .unwrap_err();
        assert_eq!(err.to_string(), "parameter 'updates' must be valid JSON");
        // A map where one value belongs is refused by name, also for optional fields.
        let err = parse("job_id=1&password=&name[a]=x")
            .decode::<Example>()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'name' must be text, not a list or map"
        );
        let err = parse("job_id[a]=1&password=")
            .decode::<Example>()
            .unwrap_err();
        assert_eq!(err.to_string(), "parameter 'job_id' must be an integer");
    }
}
