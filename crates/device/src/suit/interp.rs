//! Manifest decoding and symbolic evaluation of the command sequences (draft-ietf-suit-manifest
//! §6.4, §8.4.6, §8.4.8–§8.4.10): which parameters each component ends up with along every feasible path.
//!
//! The evaluation keeps a set of *paths*. `try-each` forks a path into one per branch (plus the
//! unchanged path when the argument ends with nil); a path is dropped when one of its
//! conditions contradicts what an earlier condition on the same path established (a component
//! is in one slot, a device has one class and one vendor id) or on `condition-abort`. Every
//! sequence starts with component index 0. Sequences run in procedure order on the state the
//! common sequence leaves: payload-fetch, install (update), then validate, load, invoke.
//! Commands that act on the device (fetch, copy, invoke, …) do not change parameters and are
//! skipped, as are unknown and custom commands (each is a command/argument pair).

use alloc::{string::String, vec, vec::Vec};

use coset::cbor::value::Value;

use super::{
    COSE_ALG_SHA256, MAX_COMMANDS_EVALUATED, MAX_COMPONENT_ID_SEGMENT_BYTES, MAX_COMPONENT_ID_SEGMENTS, MAX_COMPONENTS,
    MAX_PATHS, MAX_SEQUENCE_COMMANDS, MAX_SEQUENCE_DEPTH, MAX_TEXT_BYTES, MAX_URI_BYTES, MAX_VERSION_PARTS,
    SUIT_MANIFEST_VERSION, SuitComponent, SuitComponentText, SuitDigest, SuitError, SuitManifest, SuitParameters,
    SuitText, SuitVersionMatch, VersionComparison, key,
    wire::{self, EnvelopeParts, as_u64, decode_value},
};

/// Command ids (draft-ietf-suit-manifest-37 §11.4 "SUIT Commands").
mod cmd {
    pub const CONDITION_VENDOR_IDENTIFIER: u64 = 1;
    pub const CONDITION_CLASS_IDENTIFIER: u64 = 2;
    pub const CONDITION_COMPONENT_SLOT: u64 = 5;
    pub const CONDITION_ABORT: u64 = 14;
    /// draft-ietf-suit-update-management.
    pub const CONDITION_VERSION: u64 = 28;
    pub const DIRECTIVE_SET_COMPONENT_INDEX: u64 = 12;
    pub const DIRECTIVE_TRY_EACH: u64 = 15;
    /// `suit-directive-set-parameters` of earlier drafts: sets only parameters not yet set.
    pub const DIRECTIVE_SET_PARAMETERS: u64 = 19;
    pub const DIRECTIVE_OVERRIDE_PARAMETERS: u64 = 20;
    pub const DIRECTIVE_RUN_SEQUENCE: u64 = 32;
}

/// Parameter ids (§11.5 "SUIT Parameters").
mod param {
    pub const VENDOR_IDENTIFIER: u64 = 1;
    pub const CLASS_IDENTIFIER: u64 = 2;
    pub const IMAGE_DIGEST: u64 = 3;
    pub const COMPONENT_SLOT: u64 = 5;
    pub const IMAGE_SIZE: u64 = 14;
    pub const URI: u64 = 21;
    /// draft-ietf-suit-update-management: `bstr .cbor [comparison-type, [+int]]`.
    pub const VERSION: u64 = 28;
}

/// A `SUIT_Component_Identifier`: a list of byte strings.
type ComponentId = Vec<Vec<u8>>;

/// Most parameters in one override-parameters map.
const MAX_PARAMETERS: usize = 32;

/// `cbor-pen = #6.112(bstr)`: a vendor id given as an IANA Private Enterprise Number.
const CBOR_PEN_TAG: u64 = 112;

fn malformed(what: &'static str) -> SuitError {
    SuitError::Malformed { what }
}

/// One component's parameters and the facts its conditions established on a path.
#[derive(Clone, Debug, Default)]
struct ComponentState {
    vendor_id: Option<[u8; 16]>,
    class_id: Option<[u8; 16]>,
    image_digest: Option<SuitDigest>,
    image_size: Option<u64>,
    uri: Option<String>,
    slot: Option<u64>,
    checked_vendor: Option<[u8; 16]>,
    checked_class: Option<[u8; 16]>,
    checked_slot: Option<u64>,
    version: Option<SuitVersionMatch>,
    checked_versions: Vec<SuitVersionMatch>,
}

impl ComponentState {
    fn summary(&self) -> SuitParameters {
        SuitParameters {
            vendor_id: self.checked_vendor.or(self.vendor_id),
            vendor_id_checked: self.checked_vendor.is_some(),
            class_id: self.checked_class.or(self.class_id),
            class_id_checked: self.checked_class.is_some(),
            image_digest: self.image_digest.clone(),
            image_size: self.image_size,
            uri: self.uri.clone(),
            slot: self.checked_slot.or(self.slot),
            version_conditions: self.checked_versions.clone(),
        }
    }

    /// Records a condition's outcome; false when it contradicts an earlier one on this path.
    fn check(&mut self, condition: u64) -> bool {
        fn establish<T: Copy + PartialEq>(fact: &mut Option<T>, value: Option<T>) -> bool {
            match (*fact, value) {
                (Some(known), Some(v)) if known != v => false,
                (_, Some(v)) => {
                    *fact = Some(v);
                    true
                }
                // The parameter is unset (or a PEN): nothing this evaluation can establish.
                (_, None) => true,
            }
        }
        match condition {
            cmd::CONDITION_VENDOR_IDENTIFIER => establish(&mut self.checked_vendor, self.vendor_id),
            cmd::CONDITION_CLASS_IDENTIFIER => establish(&mut self.checked_class, self.class_id),
            cmd::CONDITION_COMPONENT_SLOT => establish(&mut self.checked_slot, self.slot),
            cmd::CONDITION_VERSION => {
                if let Some(v) = self.version.as_ref().filter(|v| !self.checked_versions.contains(v)) {
                    self.checked_versions.push(v.clone());
                }
                true
            }
            _ => true,
        }
    }
}

/// One parameter value from an override / set-parameters map.
#[derive(Clone, Debug)]
enum Param {
    Vendor(Option<[u8; 16]>),
    Class([u8; 16]),
    Digest(SuitDigest),
    Size(u64),
    Slot(u64),
    Uri(String),
    Version(SuitVersionMatch),
}

impl Param {
    fn apply(&self, state: &mut ComponentState, overwrite: bool) {
        fn put<T: Clone>(slot: &mut Option<T>, value: T, overwrite: bool) {
            if overwrite || slot.is_none() {
                *slot = Some(value);
            }
        }
        match self {
            Param::Vendor(v) if overwrite || state.vendor_id.is_none() => state.vendor_id = *v,
            Param::Vendor(_) => {}
            Param::Class(c) => put(&mut state.class_id, *c, overwrite),
            Param::Digest(d) => put(&mut state.image_digest, d.clone(), overwrite),
            Param::Size(s) => put(&mut state.image_size, *s, overwrite),
            Param::Slot(s) => put(&mut state.slot, *s, overwrite),
            Param::Uri(u) => put(&mut state.uri, u.clone(), overwrite),
            Param::Version(v) => put(&mut state.version, v.clone(), overwrite),
        }
    }
}

/// A path through the sequences: per-component state and the selected component indices.
#[derive(Clone, Debug)]
struct Path {
    components: Vec<ComponentState>,
    selected: Vec<usize>,
}

/// Evaluation context: the component count and the remaining command budget.
struct Eval {
    components: usize,
    evaluated: usize,
}

impl Eval {
    /// Runs one encoded command sequence over every path.
    fn run(&mut self, sequence: &[u8], mut paths: Vec<Path>, depth: usize) -> Result<Vec<Path>, SuitError> {
        if depth > MAX_SEQUENCE_DEPTH {
            return Err(SuitError::LimitExceeded {
                what: "command sequence nesting",
                max: MAX_SEQUENCE_DEPTH,
            });
        }
        let Value::Array(items) = decode_value(sequence)? else {
            return Err(malformed("command sequence is not an array"));
        };
        if items.len() % 2 != 0 {
            return Err(malformed("command sequence is not command/argument pairs"));
        }
        if items.len() / 2 > MAX_SEQUENCE_COMMANDS {
            return Err(SuitError::LimitExceeded {
                what: "commands in a sequence",
                max: MAX_SEQUENCE_COMMANDS,
            });
        }
        for pair in items.chunks_exact(2) {
            self.evaluated = self.evaluated.saturating_add(paths.len().max(1));
            if self.evaluated > MAX_COMMANDS_EVALUATED {
                return Err(SuitError::LimitExceeded {
                    what: "commands evaluated",
                    max: MAX_COMMANDS_EVALUATED,
                });
            }
            let command = wire::as_i64(&pair[0]).ok_or(malformed("command id is not an integer"))?;
            paths = self.step(command, &pair[1], paths, depth)?;
        }
        Ok(paths)
    }

    fn step(&mut self, command: i64, arg: &Value, mut paths: Vec<Path>, depth: usize) -> Result<Vec<Path>, SuitError> {
        let Ok(command) = u64::try_from(command) else {
            return Ok(paths); // suit-command-custom (nint): vendor specific, no parameters
        };
        match command {
            cmd::DIRECTIVE_SET_COMPONENT_INDEX => {
                let selected = self.component_index(arg)?;
                paths.iter_mut().for_each(|p| p.selected.clone_from(&selected));
            }
            cmd::DIRECTIVE_OVERRIDE_PARAMETERS | cmd::DIRECTIVE_SET_PARAMETERS => {
                let params = parse_parameters(arg)?;
                let overwrite = command == cmd::DIRECTIVE_OVERRIDE_PARAMETERS;
                for path in &mut paths {
                    for &i in &path.selected {
                        params.iter().for_each(|p| p.apply(&mut path.components[i], overwrite));
                    }
                }
            }
            cmd::DIRECTIVE_TRY_EACH => return self.try_each(arg, paths, depth),
            cmd::DIRECTIVE_RUN_SEQUENCE => {
                let Value::Bytes(sequence) = arg else {
                    return Err(malformed("run-sequence argument is not a bstr"));
                };
                return self.run(sequence, paths, depth + 1);
            }
            cmd::CONDITION_ABORT => paths.clear(),
            condition => paths.retain_mut(|p| {
                let selected = p.selected.clone();
                selected.into_iter().all(|i| p.components[i].check(condition))
            }),
        }
        Ok(paths)
    }

    /// `try-each`: every path forks into its feasible branches (and itself after a final nil).
    fn try_each(&mut self, arg: &Value, paths: Vec<Path>, depth: usize) -> Result<Vec<Path>, SuitError> {
        let Value::Array(branches) = arg else {
            return Err(malformed("try-each argument is not an array"));
        };
        let mut out = Vec::new();
        for path in paths {
            for (n, branch) in branches.iter().enumerate() {
                match branch {
                    Value::Bytes(sequence) => out.extend(self.run(sequence, vec![path.clone()], depth + 1)?),
                    Value::Null if n + 1 == branches.len() => out.push(path.clone()),
                    _ => return Err(malformed("try-each branch is neither a bstr nor a final nil")),
                }
                if out.len() > MAX_PATHS {
                    return Err(SuitError::LimitExceeded {
                        what: "paths through try-each",
                        max: MAX_PATHS,
                    });
                }
            }
        }
        Ok(out)
    }

    /// `IndexArg = uint / true / [+ uint]`, each index below the component count.
    fn component_index(&self, arg: &Value) -> Result<Vec<usize>, SuitError> {
        let index = |v: &Value| {
            as_u64(v)
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < self.components)
                .ok_or(malformed("component index is not a valid index"))
        };
        match arg {
            Value::Bool(true) => Ok((0..self.components).collect()),
            Value::Array(list) if !list.is_empty() && list.len() <= MAX_COMPONENTS => list.iter().map(index).collect(),
            other => Ok(vec![index(other)?]),
        }
    }
}

fn parse_parameters(arg: &Value) -> Result<Vec<Param>, SuitError> {
    let Value::Map(entries) = arg else {
        return Err(malformed("parameters are not a map"));
    };
    if entries.len() > MAX_PARAMETERS {
        return Err(SuitError::LimitExceeded {
            what: "parameters in one directive",
            max: MAX_PARAMETERS,
        });
    }
    let mut out = Vec::new();
    for (k, v) in entries {
        // Custom (nint) and unknown parameters do not describe the image; skip them.
        if let Some(p) = as_u64(k).map(|k| parse_parameter(k, v)).transpose()?.flatten() {
            out.push(p);
        }
    }
    Ok(out)
}

fn parse_parameter(id: u64, value: &Value) -> Result<Option<Param>, SuitError> {
    let uuid = |v: &Value| match v {
        Value::Bytes(b) => <[u8; 16]>::try_from(b.as_slice()).map_err(|_| malformed("UUID is not 16 bytes")),
        _ => Err(malformed("UUID is not a bstr")),
    };
    let uint = |v: &Value| as_u64(v).ok_or(malformed("parameter is not an unsigned integer"));
    Ok(Some(match id {
        param::VENDOR_IDENTIFIER => match value {
            Value::Tag(CBOR_PEN_TAG, _) => Param::Vendor(None),
            v => Param::Vendor(Some(uuid(v)?)),
        },
        param::CLASS_IDENTIFIER => Param::Class(uuid(value)?),
        param::IMAGE_DIGEST => match value {
            Value::Bytes(encoded) => Param::Digest(wire::parse_digest_bytes(encoded)?),
            _ => return Err(malformed("image-digest is not a bstr")),
        },
        param::IMAGE_SIZE => Param::Size(uint(value)?),
        param::COMPONENT_SLOT => Param::Slot(uint(value)?),
        param::URI => Param::Uri(bounded_text(value, MAX_URI_BYTES, "uri")?),
        param::VERSION => match value {
            Value::Bytes(encoded) => Param::Version(parse_version(&decode_value(encoded)?)?),
            _ => return Err(malformed("version parameter is not a bstr")),
        },
        _ => return Ok(None),
    }))
}

/// `[comparison-type: uint, comparison-value: [+int]]`.
fn parse_version(value: &Value) -> Result<SuitVersionMatch, SuitError> {
    let Value::Array(items) = value else {
        return Err(malformed("version parameter is not an array"));
    };
    let [comparison, Value::Array(parts)] = items.as_slice() else {
        return Err(malformed("version parameter is not [comparison, [+int]]"));
    };
    let comparison = as_u64(comparison)
        .and_then(VersionComparison::from_id)
        .ok_or(malformed("unknown version comparison type"))?;
    if parts.is_empty() || parts.len() > MAX_VERSION_PARTS {
        return Err(SuitError::LimitExceeded {
            what: "version integers (1 to MAX_VERSION_PARTS)",
            max: MAX_VERSION_PARTS,
        });
    }
    let value = parts
        .iter()
        .map(|p| wire::as_i64(p).ok_or(malformed("version part is not an integer")))
        .collect::<Result<_, _>>()?;
    Ok(SuitVersionMatch { comparison, value })
}

fn bounded_text(value: &Value, max: usize, what: &'static str) -> Result<String, SuitError> {
    match value {
        Value::Text(t) if t.len() <= max => Ok(t.clone()),
        Value::Text(_) => Err(SuitError::LimitExceeded { what, max }),
        _ => Err(malformed("expected a text string")),
    }
}

/// The fields of a decoded manifest map, before evaluation.
#[derive(Default)]
struct ManifestFields {
    version: Option<u64>,
    sequence_number: Option<u64>,
    common: Option<Vec<u8>>,
    reference_uri: Option<String>,
    /// (key, member value): command sequences and text, inline bstr or SUIT_Digest.
    members: Vec<(u64, Value)>,
}

fn manifest_fields(content: &[u8]) -> Result<ManifestFields, SuitError> {
    let Value::Map(entries) = decode_value(content)? else {
        return Err(malformed("manifest is not a map"));
    };
    let mut f = ManifestFields::default();
    let mut seen = Vec::new();
    for (k, v) in entries {
        let k = as_u64(&k).ok_or(malformed("manifest key is not an unsigned integer"))?;
        if seen.contains(&k) {
            return Err(malformed("duplicate manifest key"));
        }
        seen.push(k);
        match (k, v) {
            (key::MANIFEST_VERSION, v) => f.version = Some(as_u64(&v).ok_or(malformed("manifest-version"))?),
            (key::MANIFEST_SEQUENCE_NUMBER, v) => {
                f.sequence_number = Some(as_u64(&v).ok_or(malformed("sequence number is not a uint"))?)
            }
            (key::COMMON, Value::Bytes(b)) => f.common = Some(b),
            (key::REFERENCE_URI, v) => f.reference_uri = Some(bounded_text(&v, MAX_URI_BYTES, "reference-uri")?),
            (key::VALIDATE | key::LOAD | key::INVOKE, Value::Bytes(b)) => f.members.push((k, Value::Bytes(b))),
            (key::COMMON | key::VALIDATE | key::LOAD | key::INVOKE, _) => {
                return Err(malformed("common / validate / load / invoke is not a bstr"));
            }
            (key::PAYLOAD_FETCH | key::INSTALL | key::TEXT, v) => f.members.push((k, v)),
            _ => {} // extensions (e.g. suit-manifest-component-id) are not interpreted
        }
    }
    Ok(f)
}

/// Resolves a severable member: inline bstr contents, or the envelope's copy checked against the
/// manifest's digest of it (`None` when severed and absent).
fn resolve_member(k: u64, value: &Value, parts: &EnvelopeParts<'_>) -> Result<Option<Vec<u8>>, SuitError> {
    match value {
        Value::Bytes(b) => Ok(Some(b.clone())),
        digest @ Value::Array(_) => {
            let digest = wire::parse_digest(digest)?;
            let Some(raw) = parts.severed(k) else { return Ok(None) };
            if digest.alg != COSE_ALG_SHA256 {
                return Err(SuitError::UnsupportedAlg {
                    what: "severed member digest",
                    alg: digest.alg,
                });
            }
            if SuitDigest::sha256_of(raw) != digest {
                return Err(SuitError::SeveredDigestMismatch { key: k });
            }
            Ok(Some(wire::bstr_contents(raw)?.to_vec()))
        }
        _ => Err(malformed("severable member is neither a bstr nor a SUIT_Digest")),
    }
}

/// `SUIT_Common`: component identifiers and the shared sequence.
fn parse_common(common: &[u8]) -> Result<(Vec<ComponentId>, Option<Vec<u8>>), SuitError> {
    let Value::Map(entries) = decode_value(common)? else {
        return Err(malformed("suit-common is not a map"));
    };
    let (mut components, mut shared) = (Vec::new(), None);
    for (k, v) in entries {
        match (as_u64(&k), v) {
            (Some(key::COMMON_COMPONENTS), Value::Array(list)) => components = parse_components(&list)?,
            (Some(key::COMMON_SHARED_SEQUENCE), Value::Bytes(b)) => shared = Some(b),
            (Some(key::COMMON_COMPONENTS | key::COMMON_SHARED_SEQUENCE), _) => {
                return Err(malformed("suit-components / shared-sequence has the wrong type"));
            }
            _ => {}
        }
    }
    Ok((components, shared))
}

fn parse_components(list: &[Value]) -> Result<Vec<ComponentId>, SuitError> {
    if list.len() > MAX_COMPONENTS {
        return Err(SuitError::LimitExceeded {
            what: "components",
            max: MAX_COMPONENTS,
        });
    }
    list.iter().map(parse_component_id).collect()
}

fn parse_component_id(id: &Value) -> Result<ComponentId, SuitError> {
    let Value::Array(segments) = id else {
        return Err(malformed("component identifier is not an array"));
    };
    if segments.len() > MAX_COMPONENT_ID_SEGMENTS {
        return Err(SuitError::LimitExceeded {
            what: "component identifier segments",
            max: MAX_COMPONENT_ID_SEGMENTS,
        });
    }
    segments
        .iter()
        .map(|s| match s {
            Value::Bytes(b) if b.len() <= MAX_COMPONENT_ID_SEGMENT_BYTES => Ok(b.clone()),
            Value::Bytes(_) => Err(SuitError::LimitExceeded {
                what: "component identifier segment",
                max: MAX_COMPONENT_ID_SEGMENT_BYTES,
            }),
            _ => Err(malformed("component identifier segment is not a bstr")),
        })
        .collect()
}

/// Order in which sequences are evaluated after the common sequence.
const SEQUENCE_ORDER: [u64; 5] = [key::PAYLOAD_FETCH, key::INSTALL, key::VALIDATE, key::LOAD, key::INVOKE];

/// Decodes the manifest (`raw` is the whole encoded key-3 bstr) and evaluates its sequences.
pub(super) fn decode_manifest(raw: &[u8], parts: &EnvelopeParts<'_>) -> Result<SuitManifest, SuitError> {
    let f = manifest_fields(wire::bstr_contents(raw)?)?;
    match f.version {
        Some(SUIT_MANIFEST_VERSION) => {}
        Some(v) => return Err(SuitError::UnsupportedVersion(v)),
        None => return Err(malformed("no suit-manifest-version")),
    }
    let sequence_number = f.sequence_number.ok_or(malformed("no suit-manifest-sequence-number"))?;
    let common = f.common.as_deref().ok_or(malformed("no suit-common"))?;
    let (ids, shared) = parse_common(common)?;
    let mut eval = Eval {
        components: ids.len(),
        evaluated: 0,
    };
    let start = Path {
        components: vec![ComponentState::default(); ids.len()],
        selected: vec![0].into_iter().filter(|i| *i < ids.len()).collect(),
    };
    let mut paths = vec![start.clone()];
    if let Some(shared) = &shared {
        paths = eval.run(shared, paths, 0)?;
    }
    let (mut sequences, mut severed_missing, mut text) = (Vec::new(), Vec::new(), None);
    for (k, value) in &f.members {
        let Some(body) = resolve_member(*k, value, parts)? else {
            severed_missing.push(*k);
            continue;
        };
        if *k == key::TEXT {
            text = Some(parse_text(&body)?);
        }
    }
    for k in SEQUENCE_ORDER {
        let Some((_, value)) = f.members.iter().find(|(m, _)| *m == k) else {
            continue;
        };
        let Some(body) = resolve_member(k, value, parts)? else {
            continue;
        };
        paths.iter_mut().for_each(|p| p.selected.clone_from(&start.selected));
        paths = eval.run(&body, paths, 0)?;
        sequences.push(k);
    }
    if paths.is_empty() {
        return Err(malformed("no path through the command sequences can succeed"));
    }
    Ok(SuitManifest {
        sequence_number,
        manifest_digest: SuitDigest::sha256_of(raw),
        components: summarize(ids, &paths),
        reference_uri: f.reference_uri,
        text,
        sequences,
        severed_missing,
    })
}

/// One [`SuitComponent`] per identifier: the distinct path summaries and what they agree on.
fn summarize(ids: Vec<ComponentId>, paths: &[Path]) -> Vec<SuitComponent> {
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| {
            let mut alternatives: Vec<SuitParameters> = Vec::new();
            for summary in paths.iter().map(|p| p.components[i].summary()) {
                if !alternatives.contains(&summary) {
                    alternatives.push(summary);
                }
            }
            fn agreed<T: PartialEq + Clone>(
                alts: &[SuitParameters],
                f: impl Fn(&SuitParameters) -> Option<T>,
            ) -> Option<T> {
                let first = f(alts.first()?);
                alts.iter().all(|a| f(a) == first).then_some(first).flatten()
            }
            SuitComponent {
                vendor_id: agreed(&alternatives, |a| a.vendor_id),
                class_id: agreed(&alternatives, |a| a.class_id),
                image_digest: agreed(&alternatives, |a| a.image_digest.clone()),
                image_size: agreed(&alternatives, |a| a.image_size),
                uri: agreed(&alternatives, |a| a.uri.clone()),
                id,
                alternatives,
            }
        })
        .collect()
}

/// `SUIT_Text_Map`: the first language's manifest and component texts.
fn parse_text(body: &[u8]) -> Result<SuitText, SuitError> {
    let Value::Map(languages) = decode_value(body)? else {
        return Err(malformed("suit-text is not a map"));
    };
    let Some((Value::Text(language), Value::Map(entries))) = languages.into_iter().next() else {
        return Err(malformed("suit-text has no language map"));
    };
    let mut text = SuitText {
        language: bounded_text(&Value::Text(language), MAX_TEXT_BYTES, "text language")?,
        ..SuitText::default()
    };
    for (k, v) in entries {
        match (&k, as_u64(&k)) {
            (_, Some(1)) => text.manifest_description = Some(bounded_text(&v, MAX_TEXT_BYTES, "text")?),
            (_, Some(2)) => text.update_description = Some(bounded_text(&v, MAX_TEXT_BYTES, "text")?),
            (Value::Array(_), _) if text.components.len() < MAX_COMPONENTS => {
                text.components.push(parse_component_text(&k, &v)?)
            }
            (Value::Array(_), _) => {
                return Err(SuitError::LimitExceeded {
                    what: "component texts",
                    max: MAX_COMPONENTS,
                });
            }
            _ => {} // JSON / YAML sources and extensions are not kept
        }
    }
    Ok(text)
}

fn parse_component_text(id: &Value, value: &Value) -> Result<SuitComponentText, SuitError> {
    let Value::Map(entries) = value else {
        return Err(malformed("component text is not a map"));
    };
    let mut t = SuitComponentText {
        id: parse_component_id(id)?,
        ..SuitComponentText::default()
    };
    for (k, v) in entries {
        let field = match as_u64(k) {
            Some(1) => &mut t.vendor_name,
            Some(2) => &mut t.model_name,
            Some(3) => &mut t.vendor_domain,
            Some(4) => &mut t.model_info,
            Some(5) => &mut t.description,
            Some(6) => &mut t.version,
            _ => continue,
        };
        *field = Some(bounded_text(v, MAX_TEXT_BYTES, "text")?);
    }
    Ok(t)
}
