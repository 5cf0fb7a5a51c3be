//! Kubernetes protobuf → JSON, driven by the schema rather than code per type.
//!
//! A message decoded with prost-reflect is rendered the way the API server's
//! JSON serializer writes the same Go object:
//! - field names are the proto names, which go-to-protobuf takes from the JSON
//!   tags, except Go initialisms it lower-cased only at the first letter
//!   (`aPIGroup` → `apiGroup`, `uID` → `uid`), Go names kept as is (`Webhooks`
//!   → `webhooks`), and the CRD schema's
//!   `x-kubernetes-*`, `$ref`, `$schema`;
//! - embedded Go structs (`json:",inline"`) are flattened into their parent:
//!   [`INLINE_FIELDS`]. The proto files do not mark them (go-to-protobuf names an
//!   embedded field after its type, but so are many ordinary fields), so they are
//!   listed; the fixture test fails for any type that needs another entry;
//! - wrapper types have their Go JSON forms: Time and MicroTime as RFC 3339
//!   (zero → null), Duration as a Go duration string, Quantity as a string,
//!   IntOrString as a number or string, RawExtension/FieldsV1/JSON as the
//!   embedded JSON, named string slices (Verbs, ExtraValue, AttestationValue:
//!   `is_named_string_slice`) as bare arrays;
//! - bytes as base64, 64-bit integers as JSON numbers, maps with sorted keys;
//! - zero values that Go's `omitempty`/`omitzero` tags leave out are left out,
//!   and absent slices and maps without such a tag are `null`: [`omit`].
//!
//! `tests/it/k8s_testdata.rs` checks this against every type in the official
//! Kubernetes serialization fixtures, so a new type that needs another rule fails
//! there.

use base64::Engine;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value,
};
use serde_json::{Map, Value as Json};

use super::omit;

/// Embedded Go structs, by (message name, proto field name).
pub const INLINE_FIELDS: &[(&str, &str)] = &[
    ("Probe", "handler"),
    ("Volume", "volumeSource"),
    ("PersistentVolumeSpec", "persistentVolumeSource"),
    ("EphemeralContainer", "ephemeralContainerCommon"),
    ("IngressRule", "ingressRuleValue"),
    ("SecretEnvSource", "localObjectReference"),
    ("ConfigMapEnvSource", "localObjectReference"),
    ("SecretKeySelector", "localObjectReference"),
    ("ConfigMapKeySelector", "localObjectReference"),
    ("SecretProjection", "localObjectReference"),
    ("ConfigMapProjection", "localObjectReference"),
    ("ConfigMapVolumeSource", "localObjectReference"),
    ("Unknown", "typeMeta"),
    ("NamedRuleWithOperations", "ruleWithOperations"),
    ("RuleWithOperations", "rule"),
    ("DeviceAllocationConfiguration", "deviceConfiguration"),
    ("DeviceClaimConfiguration", "deviceConfiguration"),
    ("DeviceClassConfiguration", "deviceConfiguration"),
    ("DriverAllocationResult", "allocationResultModel"),
    ("ResourceFilter", "resourceFilterModel"),
    ("ResourceRequest", "resourceRequestModel"),
    ("ResourceSlice", "resourceModel"),
];

/// Fields whose JSON name really is the capitalised Go name.
pub const KEEP_CAPITALIZED: &[(&str, &str)] = &[("DaemonEndpoint", "Port")];

const META: &str = "apimachinery.pkg.apis.meta.v1.";

/// Renders a decoded message as the API server's JSON.
pub fn message_to_json(msg: &DynamicMessage) -> Json {
    render_message(msg, &mut Ctx::default())
}

/// Renders a message and also returns the JSON paths of the objects that held
/// fields the schema does not know (a newer Kubernetes than the schema).
pub fn message_to_json_checked(msg: &DynamicMessage) -> (Json, Vec<String>) {
    let mut ctx = Ctx::default();
    let json = render_message(msg, &mut ctx);
    (json, ctx.unknown)
}

#[derive(Default)]
struct Ctx {
    path: Vec<String>,
    unknown: Vec<String>,
}

fn render_message(msg: &DynamicMessage, ctx: &mut Ctx) -> Json {
    if let Some(special) = special_form(msg, ctx) {
        return special;
    }
    if msg.unknown_fields().next().is_some() {
        ctx.unknown.push(ctx.path.concat());
    }
    let mut obj = Map::new();
    write_fields(msg, &mut obj, ctx);
    Json::Object(obj)
}

fn is_inline(parent: &MessageDescriptor, field: &FieldDescriptor) -> bool {
    // Cheapest test first: this runs for every field of every object.
    let name = field.name();
    INLINE_FIELDS
        .iter()
        .any(|(m, f)| *f == name && *m == parent.name())
        && !field.is_list()
        && !field.is_map()
        && matches!(field.kind(), Kind::Message(_))
}

/// The JSON name of a field.
pub fn json_name(msg: &MessageDescriptor, field: &FieldDescriptor) -> String {
    let name = field.name();
    if msg.name() == "JSONSchemaProps" {
        match name {
            "ref" => return "$ref".into(),
            "schema" => return "$schema".into(),
            _ => {}
        }
    }
    if let Some(rest) = name.strip_prefix("xKubernetes") {
        let mut out = String::from("x-kubernetes");
        for ch in rest.chars() {
            if ch.is_ascii_uppercase() {
                out.push('-');
                out.push(ch.to_ascii_lowercase());
            } else {
                out.push(ch);
            }
        }
        return out;
    }
    let b = name.as_bytes();
    if b.len() >= 2
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_lowercase()
        && !KEEP_CAPITALIZED.contains(&(msg.name(), name))
    {
        // A Go field name used as is (`Webhooks`, `Expression`): its JSON tag is
        // the lower-camel form. All-capital runs (`JSONPath`) are JSON names already.
        return lower_first(name);
    }
    if b.len() >= 2 && b[0].is_ascii_lowercase() && b[1].is_ascii_uppercase() {
        // An initialism lower-cased only at its first letter: `aPIGroup`, `uID`.
        let run_end = b[1..]
            .iter()
            .position(|c| !c.is_ascii_uppercase())
            .map_or(b.len(), |p| p + 1);
        let keep_last = run_end < b.len() && run_end - 1 > 1;
        let lower_to = if keep_last { run_end - 1 } else { run_end };
        let mut out = name[..lower_to].to_ascii_lowercase();
        out.push_str(&name[lower_to..]);
        return out;
    }
    name.to_string()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn write_fields(msg: &DynamicMessage, obj: &mut Map<String, Json>, ctx: &mut Ctx) {
    let desc = msg.descriptor();
    let omit = omit::fields_of(desc.full_name());
    for field in desc.fields() {
        let Some(value) = msg.has_field(&field).then(|| msg.get_field(&field)) else {
            // Absent: a nil slice or map, which Go prints as null unless a tag
            // omits it.
            if let Some(table) = omit {
                let name = json_name(&desc, &field);
                if table.get(&name).is_some_and(|o| o.null_when_absent) {
                    obj.insert(name, Json::Null);
                }
            }
            continue;
        };
        let value = value.as_ref();
        if is_inline(&desc, &field)
            && let Value::Message(inner) = value
        {
            match render_message(inner, ctx) {
                Json::Object(m) => obj.extend(m),
                other => {
                    obj.insert(json_name(&desc, &field), other);
                }
            }
            continue;
        }
        let name = json_name(&desc, &field);
        if let Some(o) = omit.and_then(|t| t.get(&name))
            && o.drops_zero()
            && is_zero(value, o.omitzero)
        {
            continue;
        }
        ctx.path.push(format!(".{name}"));
        let v = value_to_json(value, ctx);
        ctx.path.pop();
        obj.insert(name, v);
    }
}

/// Whether Go's JSON encoder counts `value` as empty (`omitempty`: false, 0,
/// "", an empty slice or map; never a struct) or, with `omitzero`, as its
/// type's zero value (a struct whose every field is zero, a zero Time).
fn is_zero(value: &Value, omitzero: bool) -> bool {
    match value {
        Value::Bool(b) => !b,
        Value::I32(n) => *n == 0,
        Value::I64(n) => *n == 0,
        Value::U32(n) => *n == 0,
        Value::U64(n) => *n == 0,
        Value::F32(f) => *f == 0.0,
        Value::F64(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::EnumNumber(n) => *n == 0,
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Message(m) => {
            // A named string slice is a Go slice, empty when it has no items.
            if is_named_string_slice(&m.descriptor()) {
                return m.fields().all(|(_, v)| is_zero(v, true));
            }
            omitzero && m.fields().all(|(_, v)| is_zero(v, true))
        }
    }
}

fn value_to_json(value: &Value, ctx: &mut Ctx) -> Json {
    match value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::F32(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number)
        }
        Value::F64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Value::EnumNumber(n) => Json::from(*n),
        Value::Message(m) => render_message(m, ctx),
        Value::List(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    ctx.path.push(format!("[{i}]"));
                    let j = value_to_json(v, ctx);
                    ctx.path.pop();
                    j
                })
                .collect(),
        ),
        Value::Map(map) => {
            let mut entries: Vec<(String, Json)> = map
                .iter()
                .map(|(k, v)| {
                    let key = map_key(k);
                    ctx.path.push(format!(".{key}"));
                    let j = value_to_json(v, ctx);
                    ctx.path.pop();
                    (key, j)
                })
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(entries.into_iter().collect())
        }
    }
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn get_i64(msg: &DynamicMessage, name: &str) -> i64 {
    match msg.get_field_by_name(name).as_deref() {
        Some(Value::I64(n)) => *n,
        Some(Value::I32(n)) => i64::from(*n),
        _ => 0,
    }
}

fn get_str(msg: &DynamicMessage, name: &str) -> Option<String> {
    match msg.get_field_by_name(name).as_deref() {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn get_bytes(msg: &DynamicMessage, name: &str) -> Option<Vec<u8>> {
    match msg.get_field_by_name(name).as_deref() {
        Some(Value::Bytes(b)) => Some(b.to_vec()),
        _ => None,
    }
}

/// Embedded JSON bytes (RawExtension, FieldsV1, JSON), or null if empty.
fn embedded_json(raw: Option<Vec<u8>>) -> Json {
    match raw {
        None => Json::Null,
        Some(b) if b.is_empty() => Json::Null,
        Some(b) => serde_json::from_slice(&b)
            .unwrap_or_else(|_| Json::String(base64::engine::general_purpose::STANDARD.encode(&b))),
    }
}

fn special_form(msg: &DynamicMessage, ctx: &mut Ctx) -> Option<Json> {
    let desc = msg.descriptor();
    let full = desc.full_name();
    if let Some(local) = full.strip_prefix(META) {
        match local {
            "Time" => {
                let (s, n) = (get_i64(msg, "seconds"), get_i64(msg, "nanos"));
                return Some(if s == 0 && n == 0 {
                    Json::Null
                } else {
                    Json::String(rfc3339(s, None))
                });
            }
            "MicroTime" => {
                let (s, n) = (get_i64(msg, "seconds"), get_i64(msg, "nanos"));
                return Some(if s == 0 && n == 0 {
                    Json::Null
                } else {
                    Json::String(rfc3339(s, Some(n / 1000)))
                });
            }
            "Duration" => return Some(Json::String(go_duration(get_i64(msg, "duration")))),
            "FieldsV1" => return Some(embedded_json(get_bytes(msg, "Raw"))),
            _ => {}
        }
    }
    match full {
        "apimachinery.pkg.api.resource.Quantity" => {
            Some(Json::String(get_str(msg, "string").unwrap_or_default()))
        }
        "apimachinery.pkg.util.intstr.IntOrString" => Some(if get_i64(msg, "type") == 1 {
            Json::String(get_str(msg, "strVal").unwrap_or_default())
        } else {
            Json::from(get_i64(msg, "intVal"))
        }),
        "apimachinery.pkg.runtime.RawExtension" => Some(embedded_json(get_bytes(msg, "raw"))),
        _ => {
            let name = desc.name();
            if is_named_string_slice(&desc) {
                return Some(list_items(msg));
            }
            if full.starts_with("apiextensions_apiserver.") {
                return apiextensions_form(msg, name, ctx);
            }
            None
        }
    }
}

/// Whether `desc` is how go-to-protobuf writes a named Go string slice
/// (`type Verbs []string`, ExtraValue, AttestationValue …): a message whose one
/// field is `repeated string items = 1`. Its JSON is the bare array. A struct
/// with one list field of messages (DownwardAPIProjection) is not one; over
/// every Kubernetes proto file the rule picks exactly the wrappers.
fn is_named_string_slice(desc: &MessageDescriptor) -> bool {
    let mut fields = desc.fields();
    match (fields.next(), fields.next()) {
        (Some(f), None) => {
            f.number() == 1 && f.name() == "items" && f.is_list() && f.kind() == Kind::String
        }
        _ => false,
    }
}

fn list_items(msg: &DynamicMessage) -> Json {
    match msg.get_field_by_name("items").as_deref() {
        Some(Value::List(items)) => Json::Array(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Json::String(s.clone()),
                    _ => Json::Null,
                })
                .collect(),
        ),
        _ => Json::Array(Vec::new()),
    }
}

fn apiextensions_form(msg: &DynamicMessage, name: &str, ctx: &mut Ctx) -> Option<Json> {
    let field = |n: &str| {
        msg.has_field_by_name(n)
            .then(|| msg.get_field_by_name(n))
            .flatten()
    };
    match name {
        "JSON" => Some(embedded_json(get_bytes(msg, "raw"))),
        "JSONSchemaPropsOrArray" => Some(match field("schema").as_deref() {
            Some(Value::Message(m)) => render_message(m, ctx),
            _ => match field("jSONSchemas").as_deref() {
                Some(Value::List(l)) => Json::Array(
                    l.iter()
                        .filter_map(|v| match v {
                            Value::Message(m) => Some(render_message(m, ctx)),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => Json::Null,
            },
        }),
        "JSONSchemaPropsOrBool" => Some(match field("schema").as_deref() {
            Some(Value::Message(m)) => render_message(m, ctx),
            _ => Json::Bool(matches!(
                field("allows").as_deref(),
                Some(Value::Bool(true))
            )),
        }),
        "JSONSchemaPropsOrStringArray" => Some(match field("schema").as_deref() {
            Some(Value::Message(m)) => render_message(m, ctx),
            _ => match field("property").as_deref() {
                Some(Value::List(l)) => Json::Array(
                    l.iter()
                        .filter_map(|v| match v {
                            Value::String(s) => Some(Json::String(s.clone())),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => Json::Null,
            },
        }),
        _ => None,
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant's civil_from_days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 in UTC, as Go's time.RFC3339 (or with `micros`, RFC3339Micro).
pub fn rfc3339(seconds: i64, micros: Option<i64>) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    match micros {
        None => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z"),
        Some(us) => format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{us:06}Z"),
    }
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `150ms`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&frac(u, div));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let sub = u % 1_000_000_000;
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h{m}m"));
        } else if m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&s.to_string());
        if sub > 0 {
            let f = format!("{sub:09}");
            out.push('.');
            out.push_str(f.trim_end_matches('0'));
        }
        out.push('s');
    }
    if neg { format!("-{out}") } else { out }
}

fn frac(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = div.to_string().len() - 1;
    let f = format!("{rest:0digits$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1500), "1.5µs");
        assert_eq!(go_duration(150_000_000), "150ms");
        assert_eq!(go_duration(3_500_000_000), "3.5s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    #[test]
    fn times_like_go() {
        assert_eq!(rfc3339(0, None), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000, None), "2023-11-14T22:13:20Z");
        assert_eq!(
            rfc3339(1_700_000_000, Some(5)),
            "2023-11-14T22:13:20.000005Z"
        );
    }
}
