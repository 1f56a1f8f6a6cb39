//! The same documents in JSON, TOML and YAML: where each error is reported, and that
//! successful reads match the formats' own `from_str`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::HashMap;
use std::fmt::Debug;

use dreamyard_fieldpath::{
    Path, Segment, deserialize, from_json_str, from_json_value, from_toml_str, from_yaml_str,
    from_yaml_value,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Reads `json`, `toml` and `yaml` as `T`, expects each to fail at `path` with a message
/// containing `message`, and returns the three rendered errors.
#[track_caller]
fn expect_err<T: DeserializeOwned + Debug>(
    json: &str,
    toml: &str,
    yaml: &str,
    path: &str,
    message: &str,
) -> [String; 3] {
    let json = from_json_str::<T>(json).unwrap_err();
    let toml = from_toml_str::<T>(toml).unwrap_err();
    let yaml = from_yaml_str::<T>(yaml).unwrap_err();
    let found = [
        ("json", json.path.clone(), json.to_string()),
        ("toml", toml.path.clone(), toml.to_string()),
        ("yaml", yaml.path.clone(), yaml.to_string()),
    ];
    for (format, found_path, display) in &found {
        assert_eq!(found_path.to_string(), path, "{format}: {display}");
        let prefix = if found_path.is_root() {
            String::new()
        } else {
            format!("{path}: ")
        };
        assert!(display.starts_with(&prefix), "{format}: {display:?}");
        // The message follows the path directly (serde_norway's own path prefix is not shown
        // a second time); TOML puts it on the last line, after the excerpt of the document.
        let text = match *format {
            "toml" => display.lines().last().unwrap_or_default(),
            _ => &display[prefix.len()..],
        };
        assert!(
            text.starts_with(message),
            "{format}: {display:?} lacks {message:?}"
        );
    }
    found.map(|(_, _, display)| display)
}

#[derive(Debug, Deserialize, PartialEq)]
struct Nested {
    a: A,
}

#[derive(Debug, Deserialize, PartialEq)]
struct A {
    b: B,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct B {
    lr: f64,
}

#[test]
fn wrong_type_in_nested_struct() {
    expect_err::<Nested>(
        r#"{"a": {"b": {"lr": "ten"}}}"#,
        "[a.b]\nlr = \"ten\"\n",
        "a:\n  b:\n    lr: ten\n",
        "a.b.lr",
        "invalid type: string \"ten\", expected f64",
    );
}

#[test]
fn missing_field_names_the_containing_struct() {
    expect_err::<Nested>(
        r#"{"a": {"b": {}}}"#,
        "[a.b]\n",
        "a:\n  b: {}\n",
        "a.b",
        "missing field `lr`",
    );
}

#[test]
fn unknown_field_names_the_unknown_key() {
    expect_err::<Nested>(
        r#"{"a": {"b": {"lr": 1.0, "lrr": 2.0}}}"#,
        "[a.b]\nlr = 1.0\nlrr = 2.0\n",
        "a:\n  b:\n    lr: 1.0\n    lrr: 2.0\n",
        "a.b.lrr",
        "unknown field `lrr`, expected `lr`",
    );
}

#[test]
fn root_errors_render_as_document() {
    let [json, _, _] = expect_err::<Nested>("{}", "", "{}", "(document)", "missing field `a`");
    // At the root the message is the format's own, with no path in front.
    assert_eq!(
        json,
        serde_json::from_str::<Nested>("{}")
            .unwrap_err()
            .to_string()
    );

    let err = from_json_str::<Nested>("5").unwrap_err();
    assert!(err.path.is_root());
    assert!(err.path.segments().is_empty());
    assert_eq!(err.path, Path::default());
    assert!(
        err.to_string().starts_with("invalid type: integer `5`"),
        "{err}"
    );
    // Derived structs also accept sequences, whose elements are tracked by index.
    let err = from_json_str::<Nested>("[1, 2]").unwrap_err();
    assert_eq!(err.path.segments(), [Segment::Index(0)]);
    assert_eq!(err.path.to_string(), "[0]");

    let err = from_json_str::<Nested>(r#"{"a": {"b": {"lr": 1}}} x"#).unwrap_err();
    assert!(err.path.is_root());
    assert!(err.to_string().contains("trailing characters"), "{err}");

    let err = from_toml_str::<Nested>("[a.b\nlr = 1").unwrap_err();
    assert!(err.path.is_root());
    assert!(
        err.to_string().contains("TOML parse error at line 1"),
        "{err}"
    );
}

#[test]
fn json_errors_keep_line_and_column() {
    let err = from_json_str::<Nested>(
        "{\n  \"a\": {\n    \"b\": {\n      \"lr\": \"ten\"\n    }\n  }\n}",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("a.b.lr: invalid type"), "{text}");
    assert!(text.contains(" at line 4 column "), "{text}");
    assert_eq!(err.inner.line(), 4);
}

#[test]
fn toml_and_yaml_errors_keep_their_position() {
    let err = from_toml_str::<Nested>("[a.b]\nlr = \"ten\"\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("TOML parse error at line 2, column 6"),
        "{err}"
    );
    let err = from_yaml_str::<Nested>("a:\n  b:\n    lr: ten\n").unwrap_err();
    assert_eq!(err.inner.location().map(|l| l.line()), Some(3), "{err}");
    assert!(err.to_string().contains("at line 3 column"), "{err}");
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithItems {
    a: Items,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Items {
    items: Vec<Item>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Item {
    x: u32,
}

#[test]
fn index_inside_a_vec() {
    expect_err::<WithItems>(
        r#"{"a": {"items": [{"x": 1}, {"x": 2}, {"x": "three"}]}}"#,
        "[[a.items]]\nx = 1\n[[a.items]]\nx = 2\n[[a.items]]\nx = \"three\"\n",
        "a:\n  items:\n    - x: 1\n    - x: 2\n    - x: three\n",
        "a.items[2].x",
        "invalid type",
    );
    let err = from_json_str::<WithItems>(r#"{"a": {"items": [{"x": 1}, {}]}}"#).unwrap_err();
    assert_eq!(
        err.path.segments(),
        [
            Segment::Key("a".into()),
            Segment::Key("items".into()),
            Segment::Index(1)
        ]
    );
}

#[derive(Debug, Deserialize, PartialEq)]
enum Optim {
    Sgd,
    Adam { lr: f64, betas: (f64, f64) },
    Clip(f64),
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithOptim {
    optim: Optim,
}

/// serde_norway spells externally tagged variants as YAML tags (`!Adam`), not as
/// single-key maps.
#[test]
fn externally_tagged_enum_names_the_variant() {
    expect_err::<WithOptim>(
        r#"{"optim": {"Adam": {"lr": "x", "betas": [0.9, 0.99]}}}"#,
        "[optim.Adam]\nlr = \"x\"\nbetas = [0.9, 0.99]\n",
        "optim: !Adam\n  lr: x\n  betas: [0.9, 0.99]\n",
        "optim.Adam.lr",
        "invalid type",
    );
    expect_err::<WithOptim>(
        r#"{"optim": {"Adam": {"lr": 0.1, "betas": [0.9, "y"]}}}"#,
        "[optim.Adam]\nlr = 0.1\nbetas = [0.9, \"y\"]\n",
        "optim: !Adam\n  lr: 0.1\n  betas: [0.9, y]\n",
        "optim.Adam.betas[1]",
        "invalid type",
    );
    expect_err::<WithOptim>(
        r#"{"optim": {"Clip": "big"}}"#,
        "optim = { Clip = \"big\" }\n",
        "optim: !Clip big\n",
        "optim.Clip",
        "invalid type",
    );
    // An unknown variant is reported at the field holding the enum.
    expect_err::<WithOptim>(
        r#"{"optim": "Adamm"}"#,
        "optim = \"Adamm\"\n",
        "optim: Adamm\n",
        "optim",
        "unknown variant `Adamm`",
    );
    assert_eq!(
        from_yaml_str::<WithOptim>("optim: Sgd\n").unwrap().optim,
        Optim::Sgd
    );
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Schedule {
    Constant { lr: f64 },
    Cosine { lr: f64, warmup: u32 },
}

#[derive(Debug, Deserialize, PartialEq)]
struct Train {
    schedule: Schedule,
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithSchedule {
    train: Train,
}

/// Serde buffers an internally tagged enum before picking the variant, so errors inside it
/// stop at the field holding the enum (`train.schedule`, not `train.schedule.warmup`); the
/// message still names what went wrong. The tag itself is read while buffering, through our
/// map, so an unknown tag is reported at the tag's own field (`train.schedule.kind`).
#[test]
fn internally_tagged_enum_stops_at_its_field() {
    expect_err::<WithSchedule>(
        r#"{"train": {"schedule": {"kind": "cosine", "lr": 0.1, "warmup": "x"}}}"#,
        "[train.schedule]\nkind = \"cosine\"\nlr = 0.1\nwarmup = \"x\"\n",
        "train:\n  schedule:\n    kind: cosine\n    lr: 0.1\n    warmup: x\n",
        "train.schedule",
        "invalid type: string \"x\", expected u32",
    );
    expect_err::<WithSchedule>(
        r#"{"train": {"schedule": {"kind": "cosine", "lr": 0.1}}}"#,
        "[train.schedule]\nkind = \"cosine\"\nlr = 0.1\n",
        "train:\n  schedule:\n    kind: cosine\n    lr: 0.1\n",
        "train.schedule",
        "missing field `warmup`",
    );
    expect_err::<WithSchedule>(
        r#"{"train": {"schedule": {"kind": "linear"}}}"#,
        "[train.schedule]\nkind = \"linear\"\n",
        "train:\n  schedule:\n    kind: linear\n",
        "train.schedule.kind",
        "unknown variant `linear`",
    );
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithOption {
    a: OptSection,
}

#[derive(Debug, Deserialize, PartialEq)]
struct OptSection {
    item: Option<Item>,
    #[serde(default)]
    note: Option<String>,
}

#[test]
fn option_fields() {
    expect_err::<WithOption>(
        r#"{"a": {"item": {"x": "bad"}}}"#,
        "[a.item]\nx = \"bad\"\n",
        "a:\n  item:\n    x: bad\n",
        "a.item.x",
        "invalid type",
    );
    expect_err::<WithOption>(
        r#"{"a": {"note": 5}}"#,
        "[a]\nnote = 5\n",
        "a:\n  note: [5]\n",
        "a.note",
        "invalid type",
    );
    let none = WithOption {
        a: OptSection {
            item: None,
            note: None,
        },
    };
    assert_eq!(
        from_json_str::<WithOption>(r#"{"a": {"item": null}}"#).unwrap(),
        none
    );
    assert_eq!(from_toml_str::<WithOption>("[a]\n").unwrap(), none);
    assert_eq!(
        from_yaml_str::<WithOption>("a:\n  item: ~\n").unwrap(),
        none
    );
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithMap {
    scenes: HashMap<String, Item>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithIdMap {
    ids: HashMap<u32, Item>,
}

#[test]
fn map_keys() {
    expect_err::<WithMap>(
        r#"{"scenes": {"push": {"x": 1}, "pick up": {"x": "bad"}}}"#,
        "[scenes.push]\nx = 1\n[scenes.\"pick up\"]\nx = \"bad\"\n",
        "scenes:\n  push:\n    x: 1\n  pick up:\n    x: bad\n",
        "scenes.pick up.x",
        "invalid type",
    );
    let err = from_json_str::<WithIdMap>(r#"{"ids": {"3": {"x": "bad"}}}"#).unwrap_err();
    assert_eq!(err.path.to_string(), "ids.3.x");
    let err = from_yaml_str::<WithIdMap>("ids:\n  3:\n    x: bad\n").unwrap_err();
    assert_eq!(err.path.to_string(), "ids.3.x");
    // A key that cannot be read at all is reported at the map.
    let err = from_json_str::<WithIdMap>(r#"{"ids": {"three": {"x": 1}}}"#).unwrap_err();
    assert_eq!(err.path.to_string(), "ids", "{err}");
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithDefault {
    train: TrainDefaults,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(default)]
struct TrainDefaults {
    lr: f64,
    steps: u32,
}

impl Default for TrainDefaults {
    fn default() -> Self {
        Self { lr: 0.1, steps: 10 }
    }
}

#[test]
fn serde_default_fields() {
    expect_err::<WithDefault>(
        r#"{"train": {"steps": "many"}}"#,
        "[train]\nsteps = \"many\"\n",
        "train:\n  steps: many\n",
        "train.steps",
        "invalid type",
    );
    let expected = WithDefault {
        train: TrainDefaults { lr: 0.5, steps: 10 },
    };
    assert_eq!(
        from_json_str::<WithDefault>(r#"{"train": {"lr": 0.5}}"#).unwrap(),
        expected
    );
    assert_eq!(
        from_toml_str::<WithDefault>("[train]\nlr = 0.5\n").unwrap(),
        expected
    );
    assert_eq!(
        from_yaml_str::<WithDefault>("train:\n  lr: 0.5\n").unwrap(),
        expected
    );
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithFlatten {
    outer: Outer,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Outer {
    name: String,
    #[serde(flatten)]
    extra: Extra,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Extra {
    x: u32,
    #[serde(default)]
    inner: Option<Item>,
}

/// Serde buffers the entries a flattened field may take, so errors inside it stop at the
/// struct holding it (`outer`); the struct's own fields are still tracked (`outer.name`).
#[test]
fn flatten_stops_at_the_containing_struct() {
    expect_err::<WithFlatten>(
        r#"{"outer": {"name": "n", "x": "bad"}}"#,
        "[outer]\nname = \"n\"\nx = \"bad\"\n",
        "outer:\n  name: n\n  x: bad\n",
        "outer",
        "invalid type: string \"bad\", expected u32",
    );
    expect_err::<WithFlatten>(
        r#"{"outer": {"name": "n", "x": 1, "inner": {"x": "bad"}}}"#,
        "[outer]\nname = \"n\"\nx = 1\n[outer.inner]\nx = \"bad\"\n",
        "outer:\n  name: n\n  x: 1\n  inner:\n    x: bad\n",
        "outer",
        "invalid type",
    );
    expect_err::<WithFlatten>(
        r#"{"outer": {"name": 5, "x": 1}}"#,
        "[outer]\nname = 5\nx = 1\n",
        "outer:\n  name: [5]\n  x: 1\n",
        "outer.name",
        "invalid type",
    );
    expect_err::<WithFlatten>(
        r#"{"outer": {"name": "n"}}"#,
        "[outer]\nname = \"n\"\n",
        "outer:\n  name: n\n",
        "outer",
        "missing field `x`",
    );
}

#[derive(Debug, Deserialize, PartialEq)]
struct Everything {
    nested: Nested,
    list: WithItems,
    optim: Optim,
    train: Train,
    option: OptSection,
    scenes: HashMap<String, Item>,
    defaults: TrainDefaults,
    outer: Outer,
    #[serde(default)]
    skipped: Vec<u8>,
}

const EVERYTHING_JSON: &str = r#"{
  "nested": {"a": {"b": {"lr": 0.25}}},
  "list": {"a": {"items": [{"x": 1}, {"x": 2}]}},
  "optim": {"Adam": {"lr": 0.001, "betas": [0.9, 0.999]}},
  "train": {"schedule": {"kind": "cosine", "lr": 0.5, "warmup": 100}},
  "option": {"item": {"x": 7}, "note": "hello"},
  "scenes": {"push": {"x": 3}, "pick up": {"x": 4}},
  "defaults": {"steps": 20},
  "outer": {"name": "n", "x": 9, "inner": {"x": 10}},
  "ignored": {"deep": [1, 2, {"x": null}]}
}"#;

const EVERYTHING_TOML: &str = r#"
ignored = { deep = [1, 2, { x = "y" }] }
[nested.a.b]
lr = 0.25
[[list.a.items]]
x = 1
[[list.a.items]]
x = 2
[optim.Adam]
lr = 0.001
betas = [0.9, 0.999]
[train.schedule]
kind = "cosine"
lr = 0.5
warmup = 100
[option]
item = { x = 7 }
note = "hello"
[scenes]
push = { x = 3 }
"pick up" = { x = 4 }
[defaults]
steps = 20
[outer]
name = "n"
x = 9
inner = { x = 10 }
"#;

const EVERYTHING_YAML: &str = r"
nested: {a: {b: {lr: 0.25}}}
list:
  a:
    items:
      - x: 1
      - x: 2
optim: !Adam
  lr: 0.001
  betas: [0.9, 0.999]
train:
  schedule: {kind: cosine, lr: 0.5, warmup: 100}
option: {item: {x: 7}, note: hello}
scenes:
  push: {x: 3}
  pick up: {x: 4}
defaults: {steps: 20}
outer: {name: n, x: 9, inner: {x: 10}}
ignored: {deep: [1, 2, {x: ~}]}
";

#[test]
fn successful_reads_match_the_formats_own() {
    let json: Everything = from_json_str(EVERYTHING_JSON).unwrap();
    assert_eq!(
        json,
        serde_json::from_str::<Everything>(EVERYTHING_JSON).unwrap()
    );
    let toml: Everything = from_toml_str(EVERYTHING_TOML).unwrap();
    assert_eq!(toml, toml::from_str::<Everything>(EVERYTHING_TOML).unwrap());
    let yaml: Everything = from_yaml_str(EVERYTHING_YAML).unwrap();
    assert_eq!(
        yaml,
        serde_norway::from_str::<Everything>(EVERYTHING_YAML).unwrap()
    );
    assert_eq!(json, toml);
    assert_eq!(json, yaml);
    assert_eq!(
        json.optim,
        Optim::Adam {
            lr: 0.001,
            betas: (0.9, 0.999)
        }
    );
    assert_eq!(json.defaults, TrainDefaults { lr: 0.1, steps: 20 });
    assert_eq!(json.scenes["pick up"], Item { x: 4 });

    let value: serde_json::Value = serde_json::from_str(EVERYTHING_JSON).unwrap();
    assert_eq!(from_json_value::<Everything>(value).unwrap(), json);
    let value: serde_norway::Value = serde_norway::from_str(EVERYTHING_YAML).unwrap();
    assert_eq!(from_yaml_value::<Everything>(value).unwrap(), json);
}

#[test]
fn values_are_tracked_too() {
    let value = serde_json::json!({"a": {"items": [{"x": 1}, {"x": -1}]}});
    let err = from_json_value::<WithItems>(value).unwrap_err();
    assert_eq!(err.path.to_string(), "a.items[1].x");
    assert!(
        err.to_string()
            .starts_with("a.items[1].x: invalid value: integer `-1`"),
        "{err}"
    );

    let value: serde_norway::Value = serde_norway::from_str("a:\n  b:\n    lr: ten\n").unwrap();
    let err = from_yaml_value::<Nested>(value).unwrap_err();
    assert_eq!(err.path.to_string(), "a.b.lr");
    assert!(err.to_string().starts_with("a.b.lr: invalid type"), "{err}");

    // The generic entry point, on a borrowed JSON value.
    let value = serde_json::json!({"a": {"b": {}}});
    let err = deserialize::<_, Nested>(&value).unwrap_err();
    assert_eq!(err.path.to_string(), "a.b");
}

#[test]
fn error_is_a_std_error() {
    fn takes_error(_: &dyn std::error::Error) {}
    let err = from_toml_str::<Nested>("[a.b]\n").unwrap_err();
    takes_error(&err);
    assert_eq!(
        err.path.segments(),
        [Segment::Key("a".into()), Segment::Key("b".into())]
    );
}

/// Reads a sequence of numbers, keeping `None` for elements that are not numbers: it
/// recovers from errors inside the sequence.
#[derive(Debug, PartialEq)]
struct Lenient(Vec<Option<u32>>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientVisitor;
        impl<'de> serde::de::Visitor<'de> for LenientVisitor {
            type Value = Lenient;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Lenient, A::Error> {
                let mut out = Vec::new();
                loop {
                    match seq.next_element::<u32>() {
                        Ok(Some(v)) => out.push(Some(v)),
                        Ok(None) => return Ok(Lenient(out)),
                        Err(_) => out.push(None),
                    }
                }
            }
        }
        deserializer.deserialize_seq(LenientVisitor)
    }
}

#[derive(Debug, Deserialize, PartialEq)]
struct WithLenient {
    lenient: Lenient,
    n: u32,
}

/// An error that a `Deserialize` impl recovers from does not leave its path behind.
#[test]
fn recovered_errors_are_forgotten() {
    let value = serde_json::json!({"lenient": [1, "x", 3], "n": 4});
    let read = from_json_value::<WithLenient>(value).unwrap();
    assert_eq!(
        read,
        WithLenient {
            lenient: Lenient(vec![Some(1), None, Some(3)]),
            n: 4
        }
    );

    let value = serde_json::json!({"lenient": [1, "x", 3]});
    let err = from_json_value::<WithLenient>(value).unwrap_err();
    assert!(err.path.is_root(), "{err}");
    assert_eq!(err.to_string(), "missing field `n`");

    let value = serde_json::json!({"lenient": [1, "x"], "n": "y"});
    let err = from_json_value::<WithLenient>(value).unwrap_err();
    assert_eq!(err.path.to_string(), "n");
}
