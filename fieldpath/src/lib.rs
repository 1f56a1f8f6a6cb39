//! Deserialize through any serde `Deserializer` while keeping track of the field being read,
//! so that an error can say where it happened: `denoiser.inner_model.channels[2]: invalid
//! type: string "x", expected u32` rather than only the second half.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     train: Train,
//! }
//! #[derive(serde::Deserialize)]
//! struct Train {
//!     lr: f64,
//! }
//!
//! let err = dreamyard_fieldpath::from_toml_str::<Config>("[train]\nlr = \"ten\"\n")
//!     .err()
//!     .expect("lr is not a number");
//! assert_eq!(err.path.to_string(), "train.lr");
//! assert!(err.to_string().starts_with("train.lr: TOML parse error at line 2, column 6"));
//! ```
//!
//! # Why this crate exists
//!
//! The usual tool for this is the `serde_path_to_error` crate, but it is not available in our
//! offline build, so this is a small equivalent of our own. It covers what our configuration
//! files need (JSON, TOML and YAML documents, read into `DeserializeOwned` types) and nothing
//! more: keys that are themselves maps or sequences are shown as `?`, and there is no
//! serialization side.
//!
//! # How it works
//!
//! [`deserialize`] wraps the format's `Deserializer` in one of ours. Every visitor handed to it
//! is wrapped too, and so are the sequence, map and enum accessors the format hands back to
//! that visitor: they push a path [`Segment`] (an index, a map key, an enum variant) onto a
//! shared stack while the nested value is read, and pop it afterwards. When an error comes out
//! of a nested value, the stack at that moment is recorded, once: the innermost place wins,
//! because errors travel outwards.
//!
//! # What the path can and cannot see
//!
//! * A "missing field" error is raised by a struct after its whole map has been read, so its
//!   path is the struct's own (`denoiser.inner_model`), and the message names the field.
//! * An "unknown field" error (`#[serde(deny_unknown_fields)]`) names the unknown key itself
//!   (`train.lrr`).
//! * An "unknown variant" error names the field holding the enum.
//! * Serde reads internally tagged enums (`#[serde(tag = "...")]`), untagged enums and
//!   `#[serde(flatten)]` fields into a buffer first and then deserializes from that buffer,
//!   out of our sight. Errors inside them stop at the field holding the enum, or at the struct
//!   holding the flattened field.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, Visitor};

/// One step of a path: a map key / struct field, a sequence index, or an enum variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A struct field or a map key (keys that are not strings are shown as text; `?` where
    /// the key could not be seen).
    Key(String),
    /// A position in a sequence, from 0.
    Index(usize),
    /// The variant of an externally tagged enum.
    Variant(String),
}

/// A path from the document's root; Display renders `a.b[3].c`, and `(document)` for the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path {
    segments: Vec<Segment>,
}

impl Path {
    /// The steps from the root, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether this is the document itself (no steps).
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    fn render(segments: &[Segment], f: &mut dyn fmt::Write) -> fmt::Result {
        for (i, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(name) | Segment::Variant(name) => {
                    if i > 0 {
                        f.write_char('.')?;
                    }
                    f.write_str(name)?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            f.write_str("(document)")
        } else {
            Self::render(&self.segments, f)
        }
    }
}

/// The error of the wrapped deserializer plus the path of the field it happened in.
#[derive(Debug)]
pub struct Error<E> {
    /// Where the error happened; the root for errors about the document as a whole.
    pub path: Path,
    /// The deserializer's own error, untouched (it keeps its line and column).
    pub inner: E,
}

impl<E> Error<E> {
    fn at_root(inner: E) -> Self {
        Self {
            path: Path::default(),
            inner,
        }
    }
}

impl<E: fmt::Display> Error<E> {
    /// The deserializer's message without a path of its own in front.
    ///
    /// Some formats (serde_norway) already start their message with their own idea of the
    /// path: ours or one of its ancestors, possibly without the enum variants. That prefix is
    /// dropped here, so callers that show [`Error::path`] beside the message show it once.
    pub fn message(&self) -> String {
        let inner = self.inner.to_string();
        if self.path.is_root() {
            return inner;
        }
        // serde_norway's paths leave out enum variants.
        let segments = &self.path.segments;
        let without_variants: Vec<Segment> = segments
            .iter()
            .filter(|s| !matches!(s, Segment::Variant(_)))
            .cloned()
            .collect();
        let mut prefix = String::new();
        for segments in [segments, &without_variants] {
            for len in (1..=segments.len()).rev() {
                prefix.clear();
                if Path::render(&segments[..len], &mut prefix).is_err() {
                    continue;
                }
                prefix.push_str(": ");
                if let Some(stripped) = inner.strip_prefix(&prefix) {
                    return stripped.to_owned();
                }
            }
        }
        inner
    }
}

/// Renders `{path}: {message}`, or only the message at the root (see [`Error::message`]).
impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            fmt::Display::fmt(&self.inner, f)
        } else {
            write!(f, "{}: {}", self.path, self.message())
        }
    }
}

/// The wrapped error's own source: this type only adds the path to its message.
impl<E: std::error::Error> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// Deserializes a `T` from `deserializer`, and on failure says which field failed.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, Error<D::Error>>
where
    D: Deserializer<'de>,
    T: de::Deserialize<'de>,
{
    let track = Track::default();
    T::deserialize(TrackedDeserializer {
        inner: deserializer,
        track: &track,
        is_key: false,
    })
    .map_err(|inner| Error {
        path: track.failed_at.take().unwrap_or_default(),
        inner,
    })
}

/// Like `serde_json::from_str`, with the failing field's path.
pub fn from_json_str<T: DeserializeOwned>(text: &str) -> Result<T, Error<serde_json::Error>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = deserialize(&mut deserializer)?;
    // Trailing characters after the value, as `serde_json::from_str` checks.
    deserializer.end().map_err(Error::at_root)?;
    Ok(value)
}

/// Like `toml::from_str`, with the failing field's path (syntax errors are at the root).
pub fn from_toml_str<T: DeserializeOwned>(text: &str) -> Result<T, Error<toml::de::Error>> {
    deserialize(toml::Deserializer::parse(text).map_err(Error::at_root)?)
}

/// Like `serde_norway::from_str`, with the failing field's path.
pub fn from_yaml_str<T: DeserializeOwned>(text: &str) -> Result<T, Error<serde_norway::Error>> {
    deserialize(serde_norway::Deserializer::from_str(text))
}

/// Like `serde_json::from_value`, with the failing field's path.
pub fn from_json_value<T: DeserializeOwned>(
    v: serde_json::Value,
) -> Result<T, Error<serde_json::Error>> {
    deserialize(v)
}

/// Like `serde_norway::from_value`, with the failing field's path.
pub fn from_yaml_value<T: DeserializeOwned>(
    v: serde_norway::Value,
) -> Result<T, Error<serde_norway::Error>> {
    deserialize(v)
}

/// State shared by all the wrappers of one [`deserialize`] call.
#[derive(Default)]
struct Track {
    /// The path of the value being read now.
    stack: RefCell<Vec<Segment>>,
    /// The path of the innermost error, once one has happened.
    failed_at: RefCell<Option<Path>>,
    /// The last map key or variant name seen by a [`TrackedVisitor`] reading a key.
    key: Cell<Option<String>>,
}

impl Track {
    /// Records the current path (plus `extra`) as the error's, unless an inner one was.
    fn capture(&self, extra: Option<Segment>) {
        let mut failed_at = self.failed_at.borrow_mut();
        if failed_at.is_none() {
            let mut segments = self.stack.borrow().clone();
            segments.extend(extra);
            *failed_at = Some(Path { segments });
        }
    }

    /// Runs `read` with `segment` pushed onto the path.
    fn nested<T, E>(&self, segment: Segment, read: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.stack.borrow_mut().push(segment);
        let result = read();
        if result.is_err() {
            self.capture(None);
        } else {
            // An error inside was caught and recovered from: its path no longer applies.
            *self.failed_at.borrow_mut() = None;
        }
        self.stack.borrow_mut().pop();
        result
    }
}

/// Forwards every `deserialize_*` method to `self.inner`, wrapping the visitor.
macro_rules! forward_deserializer {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let visitor = TrackedVisitor { inner: visitor, track: self.track, is_key: self.is_key };
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

/// Forwards the `visit_*` methods that take a plain value to `self.inner`, first noting the
/// value's text (as UTF-8 for bytes) when it is a key.
macro_rules! forward_visitor {
    (text: $($text:ident($text_ty:ty)),*; bytes: $($bytes:ident($bytes_ty:ty)),*) => {
        $(fn $text<E: de::Error>(self, v: $text_ty) -> Result<V::Value, E> {
            self.record(|| v.to_string());
            self.inner.$text(v)
        })*
        $(fn $bytes<E: de::Error>(self, v: $bytes_ty) -> Result<V::Value, E> {
            self.record(|| String::from_utf8_lossy(&v).into_owned());
            self.inner.$bytes(v)
        })*
    };
}

/// A deserializer that tracks the path of everything read through it. `is_key`: the value is
/// a map key or a variant name, whose text is noted in `Track::key`.
struct TrackedDeserializer<'t, D> {
    inner: D,
    track: &'t Track,
    is_key: bool,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TrackedDeserializer<'_, D> {
    type Error = D::Error;

    forward_deserializer! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(), deserialize_option(),
        deserialize_unit(), deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str), deserialize_seq(),
        deserialize_tuple(len: usize), deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_map(), deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
        deserialize_identifier(), deserialize_ignored_any(),
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A seed whose value is read through a [`TrackedDeserializer`].
struct TrackedSeed<'t, S> {
    inner: S,
    track: &'t Track,
    is_key: bool,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for TrackedSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        let (track, is_key) = (self.track, self.is_key);
        self.inner.deserialize(TrackedDeserializer {
            inner: deserializer,
            track,
            is_key,
        })
    }
}

/// A visitor that wraps whatever nested data the format hands it, and notes a plain key.
struct TrackedVisitor<'t, V> {
    inner: V,
    track: &'t Track,
    is_key: bool,
}

impl<'t, V> TrackedVisitor<'t, V> {
    fn record(&self, key: impl FnOnce() -> String) {
        if self.is_key {
            self.track.key.set(Some(key()));
        }
    }

    /// A deserializer for the same value (an option's content, a newtype's field).
    fn same_value<D>(&self, deserializer: D) -> TrackedDeserializer<'t, D> {
        TrackedDeserializer {
            inner: deserializer,
            track: self.track,
            is_key: self.is_key,
        }
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TrackedVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visitor! {
        text: visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
        visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char), visit_str(&str),
        visit_borrowed_str(&'de str), visit_string(String);
        bytes: visit_bytes(&[u8]), visit_borrowed_bytes(&'de [u8]), visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let deserializer = self.same_value(deserializer);
        self.inner.visit_some(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let deserializer = self.same_value(deserializer);
        self.inner.visit_newtype_struct(deserializer)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(TrackedSeq {
            inner: seq,
            track: self.track,
            index: 0,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(TrackedMap {
            inner: map,
            track: self.track,
            key: None,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(TrackedEnum {
            inner: data,
            track: self.track,
        })
    }
}

/// A sequence whose elements are read under their index.
struct TrackedSeq<'t, A> {
    inner: A,
    track: &'t Track,
    index: usize,
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for TrackedSeq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let (inner, track) = (&mut self.inner, self.track);
        let segment = Segment::Index(self.index);
        self.index += 1;
        let seed = TrackedSeed {
            inner: seed,
            track,
            is_key: false,
        };
        track.nested(segment, || inner.next_element_seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A map whose keys are noted, and whose values are read under their key.
struct TrackedMap<'t, A> {
    inner: A,
    track: &'t Track,
    /// The key just read, for the value that follows it.
    key: Option<String>,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for TrackedMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.track.key.set(None);
        let seed = TrackedSeed {
            inner: seed,
            track: self.track,
            is_key: true,
        };
        let result = self.inner.next_key_seed(seed);
        self.key = self.track.key.take();
        if result.is_err() {
            // An unknown field: name it (the key was seen before it was refused).
            self.track.capture(self.key.take().map(Segment::Key));
        }
        result
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let (inner, track) = (&mut self.inner, self.track);
        let key = self.key.take().unwrap_or_else(|| "?".to_owned());
        let seed = TrackedSeed {
            inner: seed,
            track,
            is_key: false,
        };
        track.nested(Segment::Key(key), || inner.next_value_seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// An externally tagged enum whose variant's content is read under the variant's name.
struct TrackedEnum<'t, A> {
    inner: A,
    track: &'t Track,
}

impl<'de, 't, A: EnumAccess<'de>> EnumAccess<'de> for TrackedEnum<'t, A> {
    type Error = A::Error;
    type Variant = TrackedVariant<'t, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let track = self.track;
        track.key.set(None);
        // An unknown variant's error is left to the enclosing field's path.
        let seed = TrackedSeed {
            inner: seed,
            track,
            is_key: true,
        };
        let (value, variant) = self.inner.variant_seed(seed)?;
        let name = track.key.take().unwrap_or_else(|| "?".to_owned());
        Ok((
            value,
            TrackedVariant {
                inner: variant,
                track,
                name,
            },
        ))
    }
}

struct TrackedVariant<'t, A> {
    inner: A,
    track: &'t Track,
    name: String,
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for TrackedVariant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        let Self { inner, track, name } = self;
        let seed = TrackedSeed {
            inner: seed,
            track,
            is_key: false,
        };
        track.nested(Segment::Variant(name), || inner.newtype_variant_seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let Self { inner, track, name } = self;
        let visitor = TrackedVisitor {
            inner: visitor,
            track,
            is_key: false,
        };
        track.nested(Segment::Variant(name), || inner.tuple_variant(len, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let Self { inner, track, name } = self;
        let visitor = TrackedVisitor {
            inner: visitor,
            track,
            is_key: false,
        };
        track.nested(Segment::Variant(name), || {
            inner.struct_variant(fields, visitor)
        })
    }
}
