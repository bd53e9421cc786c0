//! The few facts the loader needs from the running kernel's BTF (`/sys/kernel/btf/vmlinux`):
//! which BTF tracepoints exist, the parameter names of traced functions and the offset of a
//! struct member. A minimal reader of the BTF type section (aya's own `Btf` keeps its type
//! lookups private); it never interprets more than names, kinds and member offsets.
//!
//! It reads the blob in place: beside the bytes it keeps only where each type starts (4 bytes
//! a type, 0.5 MiB for a kernel's 130,000 types), and a lookup walks the types. Then it gives
//! aya only the names the program loads look up, at their ids ([`KernelBtf::into_aya_for`]),
//! so the kernel's BTF is read once, never parsed whole into aya's types, and the bytes go
//! before aya's parse.
//!
//! Format: <https://docs.kernel.org/bpf/btf.html>.
use std::{io, ops::Range, path::Path};

use super::vmlinux::{self, BtfBytes};

const MAGIC: u16 = 0xeb9f;
const KIND_PTR: u32 = 2;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
/// Bytes of a type's common header: name offset, info, size or type.
const HEADER: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    #[error("BTF type kind {0} is unknown to this reader")]
    UnknownKind(u32),
}

/// A name a program load looks up in the kernel's BTF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BtfName {
    /// A typedef (`btf_trace_<tracepoint>` for a `tp_btf` program).
    Typedef(String),
    /// A function (an fexit/fentry target, or `bpf_iter_<target>` for an iterator).
    Func(String),
}

impl BtfName {
    fn kind_and_text(&self) -> (u32, &str) {
        match self {
            BtfName::Typedef(name) => (KIND_TYPEDEF, name),
            BtfName::Func(name) => (KIND_FUNC, name),
        }
    }
}

/// A BTF blob with the types `wanted` (id, kind, name; nothing else about them) at their ids,
/// a nameless pointer to `void` at every other id below the highest, and nothing above it.
fn sparse_blob(wanted: &[(u32, u32, &str)]) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut named = std::collections::HashMap::new();
    for &(id, kind, name) in wanted {
        let offset = u32::try_from(strings.len()).unwrap_or(0);
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        named.entry(id).or_insert((offset, kind));
    }
    let highest = named.keys().copied().max().unwrap_or(0);
    let mut types = Vec::with_capacity(HEADER * usize::try_from(highest).unwrap_or(0));
    for id in 1..=highest {
        let (name, kind) = named.get(&id).copied().unwrap_or((0, KIND_PTR));
        for word in [name, kind << 24, 0] {
            types.extend_from_slice(&word.to_le_bytes());
        }
    }
    frame(&types, &strings)
}

/// A BTF blob: the header, then the `types` and `strings` sections.
pub(crate) fn frame(types: &[u8], strings: &[u8]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(24 + types.len() + strings.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for word in [
        24,
        0,
        len(types.len()),
        len(types.len()),
        len(strings.len()),
    ] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(types);
    out.extend_from_slice(strings);
    out
}

/// A kernel's BTF: its bytes and where each of its types starts.
pub struct KernelBtf {
    bytes: BtfBytes,
    /// The type and string sections, as ranges of `bytes`.
    types: Range<usize>,
    strings: Range<usize>,
    /// Where type `id` starts in the type section, at `id - 1` (id 0 is `void`).
    starts: Vec<u32>,
}

/// One type, read in place: its kind, name and the kind-specific words after the header.
#[derive(Clone, Copy)]
struct Type<'a> {
    kind: u32,
    kind_flag: bool,
    name: u32,
    /// `size` or `type`, depending on the kind.
    size_or_ref: u32,
    /// The `vlen` members (struct/union: name, type, offset) or parameters (proto: name,
    /// type) after the header.
    entries: &'a [u8],
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, BtfError> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(BtfError::Malformed("truncated"))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

fn usize_at(data: &[u8], at: usize) -> Result<usize, BtfError> {
    usize::try_from(u32_at(data, at)?).map_err(|_| BtfError::Malformed("offset too large"))
}

/// `u32_at` for data already checked to be long enough.
fn word(data: &[u8], at: usize) -> u32 {
    u32_at(data, at).unwrap_or(0)
}

/// Bytes of the kind-specific data after the header of a type of `kind` with `vlen` entries.
fn tail_len(kind: u32, vlen: usize) -> Result<usize, BtfError> {
    Ok(match kind {
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
        2 | 7..=12 | 16 | 18 => 0,
        // INT, VAR, DECL_TAG
        1 | 14 | 17 => 4,
        3 => 12, // ARRAY
        KIND_STRUCT | KIND_UNION => 12 * vlen,
        6 | KIND_FUNC_PROTO => 8 * vlen, // ENUM, FUNC_PROTO
        15 | 19 => 12 * vlen,            // DATASEC, ENUM64
        other => return Err(BtfError::UnknownKind(other)),
    })
}

impl KernelBtf {
    /// Reads the running kernel's BTF (mapped where the kernel allows it).
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let bytes = BtfBytes::from_sys_fs().map_err(|source| BtfError::Read {
            path: vmlinux::PATH.to_owned(),
            source,
        })?;
        Self::new(bytes)
    }

    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let bytes = BtfBytes::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(bytes)
    }

    /// Reads a little-endian BTF blob.
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        Self::new(data.into())
    }

    fn new(bytes: BtfBytes) -> Result<Self, BtfError> {
        let data = &*bytes;
        if u16_at(data, 0)? != MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF?)"));
        }
        let header_len = usize_at(data, 4)?;
        let (type_off, type_len) = (usize_at(data, 8)?, usize_at(data, 12)?);
        let (str_off, str_len) = (usize_at(data, 16)?, usize_at(data, 20)?);
        let section = |off: usize, len: usize| {
            let start = header_len + off;
            data.get(start..start + len)
                .map(|_| start..start + len)
                .ok_or(BtfError::Malformed("section outside the data"))
        };
        let types = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;

        let type_data = &data[types.clone()];
        let mut starts = Vec::new();
        let mut at = 0;
        while at < type_data.len() {
            let info = u32_at(type_data, at + 4)?;
            let vlen = usize::try_from(info & 0xffff).unwrap_or(0);
            let end = at + HEADER + tail_len((info >> 24) & 0x1f, vlen)?;
            if end > type_data.len() {
                return Err(BtfError::Malformed("truncated"));
            }
            starts.push(u32::try_from(at).map_err(|_| BtfError::Malformed("too many types"))?);
            at = end;
        }
        Ok(Self {
            bytes,
            types,
            strings,
            starts,
        })
    }

    /// Is the blob the kernel's own pages, mapped (rather than a copy in memory)?
    #[must_use]
    pub fn is_mapped(&self) -> bool {
        self.bytes.is_mapped()
    }

    /// How many types the blob has (`void` not counted) and how many bytes it takes.
    #[must_use]
    pub fn size(&self) -> (usize, usize) {
        (self.starts.len(), self.bytes.len())
    }

    /// aya's `Btf` for the program loads, holding only the `names` they look up, each at its
    /// id in the kernel's BTF; the bytes and this reader's index are gone afterwards.
    ///
    /// A load (`BtfTracePoint::load`, `FExit::load`, `Iter::load`) takes from aya's `Btf` only
    /// the id of one named typedef or function, which the kernel then resolves in its own BTF.
    /// aya's parse of the whole blob is 13 MiB on 6.18 (the daemon's largest allocation by far,
    /// beside the blob's own 5.3 MiB); this one keeps every id in place with a 12-byte
    /// nameless pointer for each type not looked up, and stops after the highest id wanted. A
    /// name the kernel lacks is left out, so aya's load refuses it as it would have.
    pub fn into_aya_for(self, names: &[BtfName]) -> Result<aya::Btf, aya::BtfError> {
        let wanted: Vec<(u32, u32, &str)> = names
            .iter()
            .filter_map(|name| {
                let (kind, text) = name.kind_and_text();
                self.find(kind, text).map(|(id, _)| (id, kind, text))
            })
            .collect();
        drop(self);
        aya::Btf::parse(&sparse_blob(&wanted), aya::Endianness::default())
    }

    fn type_data(&self) -> &[u8] {
        &self.bytes[self.types.clone()]
    }

    /// Type `id`, if there is one (never `void`).
    fn get(&self, id: u32) -> Option<Type<'_>> {
        let at =
            usize::try_from(*self.starts.get(usize::try_from(id).ok()?.checked_sub(1)?)?).ok()?;
        let data = self.type_data();
        let info = word(data, at + 4);
        let (kind, vlen) = ((info >> 24) & 0x1f, usize::try_from(info & 0xffff).ok()?);
        let tail = match kind {
            KIND_STRUCT | KIND_UNION | KIND_FUNC_PROTO => tail_len(kind, vlen).ok()?,
            _ => 0,
        };
        Some(Type {
            kind,
            kind_flag: info >> 31 == 1,
            name: word(data, at),
            size_or_ref: word(data, at + 8),
            entries: data.get(at + HEADER..at + HEADER + tail)?,
        })
    }

    /// The string at `offset` of the string section, as bytes (empty if there is none).
    fn name_bytes(&self, offset: u32) -> &[u8] {
        let strings = &self.bytes[self.strings.clone()];
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        strings.get(start..).map_or(&[], |rest| {
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            &rest[..end]
        })
    }

    fn name(&self, offset: u32) -> String {
        String::from_utf8_lossy(self.name_bytes(offset)).into_owned()
    }

    /// The first type of `kind` named `name`, and its id.
    fn find(&self, kind: u32, name: &str) -> Option<(u32, Type<'_>)> {
        (1..=u32::try_from(self.starts.len()).ok()?)
            .filter_map(|id| Some((id, self.get(id)?)))
            .find(|(_, ty)| ty.kind == kind && self.name_bytes(ty.name) == name.as_bytes())
    }

    /// The id of the kernel function `name`, if BTF describes it.
    #[must_use]
    pub fn function_id(&self, name: &str) -> Option<u32> {
        self.find(KIND_FUNC, name).map(|(id, _)| id)
    }

    /// Does the kernel have the BTF tracepoint `name` (its `btf_trace_<name>` typedef)?
    #[must_use]
    pub fn has_tracepoint(&self, name: &str) -> bool {
        self.find(KIND_TYPEDEF, &format!("btf_trace_{name}"))
            .is_some()
    }

    /// The parameter names of the kernel function `name`, if BTF describes it.
    #[must_use]
    pub fn function_params(&self, name: &str) -> Option<Vec<String>> {
        let (_, func) = self.find(KIND_FUNC, name)?;
        let proto = self.get(func.size_or_ref)?;
        (proto.kind == KIND_FUNC_PROTO).then(|| {
            proto
                .entries
                .chunks_exact(8)
                .map(|param| self.name(word(param, 0)))
                .collect()
        })
    }

    /// Byte offset of `member` in the struct `name`, looking into anonymous members.
    #[must_use]
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u32> {
        let (id, _) = self.find(KIND_STRUCT, name)?;
        self.find_member(id, member, 0).map(|bits| bits / 8)
    }

    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<u32> {
        let ty = self.get(id)?;
        if depth > 8 || (ty.kind != KIND_STRUCT && ty.kind != KIND_UNION) {
            return None;
        }
        for entry in ty.entries.chunks_exact(12) {
            let (name, member_type, offset) = (word(entry, 0), word(entry, 4), word(entry, 8));
            // With kind_flag the low 24 bits are the bit offset, the high 8 a bitfield size.
            let bits = if ty.kind_flag {
                offset & 0x00ff_ffff
            } else {
                offset
            };
            let name = self.name_bytes(name);
            if name == member.as_bytes() {
                return Some(bits);
            }
            if name.is_empty() {
                if let Some(inner) = self.find_member(member_type, member, depth + 1) {
                    return Some(bits + inner);
                }
            }
        }
        None
    }
}

/// Builds BTF blobs for the tests of this module and of [`super::hooks`].
#[cfg(test)]
pub(crate) mod testing {
    use super::{frame, KIND_FUNC, KIND_FUNC_PROTO, KIND_TYPEDEF};

    /// BTF with an `int`, the typedefs `typedefs` and the functions `funcs` (name, parameter
    /// names; every type `int`).
    pub fn blob(typedefs: &[&str], funcs: &[(&str, &[&str])]) -> Vec<u8> {
        let mut strings = vec![0u8];
        let mut name = |s: &str| {
            let offset = u32::try_from(strings.len()).unwrap();
            strings.extend_from_slice(s.as_bytes());
            strings.push(0);
            offset
        };
        let mut words: Vec<u32> = vec![name("int"), 1 << 24, 4, 32]; // id 1
        let mut next_id = 2;
        for typedef in typedefs {
            words.extend([name(typedef), KIND_TYPEDEF << 24, 1]);
            next_id += 1;
        }
        for (func, params) in funcs {
            let count = u32::try_from(params.len()).unwrap();
            words.extend([0, (KIND_FUNC_PROTO << 24) | count, 1]);
            for param in *params {
                words.extend([name(param), 1]);
            }
            let proto = next_id;
            words.extend([name(func), KIND_FUNC << 24, proto]);
            next_id += 2;
        }
        let types: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        frame(&types, &strings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `struct s { int a; union { int b; long c; }; }`, a typedef
    /// `btf_trace_tp` and `int f(int x, int flags)`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0s\0a\0b\0c\0btf_trace_tp\0f\0x\0flags\0long\0";
        let name = |s: &str| {
            let needle = format!("\0{s}\0");
            u32::try_from(
                strings
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                    .unwrap()
                    + 1,
            )
            .unwrap()
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        push(&[name("int"), 1 << 24, 4, 32]); // 1: int
        push(&[name("long"), 1 << 24, 8, 64]); // 2: long
        push(&[
            0,
            (KIND_UNION << 24) | 2,
            8,
            name("b"),
            1,
            0,
            name("c"),
            2,
            0,
        ]); // 3
        push(&[
            name("s"),
            (KIND_STRUCT << 24) | 2,
            16,
            name("a"),
            1,
            0,
            0,
            3,
            64,
        ]); // 4
        push(&[name("btf_trace_tp"), KIND_TYPEDEF << 24, 1]); // 5
        push(&[
            0,
            (KIND_FUNC_PROTO << 24) | 2,
            1,
            name("x"),
            1,
            name("flags"),
            1,
        ]); // 6
        push(&[name("f"), KIND_FUNC << 24, 6]); // 7
        frame(&types, strings)
    }

    #[test]
    fn reads_tracepoints_functions_and_members() {
        let btf = KernelBtf::parse(sample()).unwrap();
        assert!(btf.has_tracepoint("tp"));
        assert!(!btf.has_tracepoint("other"));
        assert_eq!(
            btf.function_params("f"),
            Some(vec!["x".to_owned(), "flags".to_owned()])
        );
        assert_eq!(btf.function_params("g"), None);
        assert_eq!(btf.member_offset("s", "a"), Some(0));
        assert_eq!(btf.member_offset("s", "c"), Some(8));
        assert_eq!(btf.member_offset("s", "d"), None);
    }

    #[test]
    fn refuses_what_is_not_btf() {
        assert!(KernelBtf::parse(b"not btf at all, not at all".to_vec()).is_err());
        let mut truncated = sample();
        truncated.truncate(truncated.len() - 60);
        assert!(KernelBtf::parse(truncated).is_err());
        let unknown_kind = frame(&[0, 0, 0, 0, 0, 0, 0, 31, 0, 0, 0, 0], b"\0");
        assert!(matches!(
            KernelBtf::parse(unknown_kind),
            Err(BtfError::UnknownKind(31))
        ));
    }

    #[test]
    fn the_first_type_of_a_name_is_the_one_found() {
        // `int f(int x)`, then a second `f` with two parameters.
        let blob = testing::blob(&[], &[("f", &["x"]), ("f", &["x", "y"])]);
        let btf = KernelBtf::parse(blob).unwrap();
        assert_eq!(btf.function_params("f"), Some(vec!["x".to_owned()]));
        assert_eq!(btf.size().0, 5);
    }

    #[test]
    fn aya_finds_the_names_looked_up_at_the_kernels_ids() {
        let full = KernelBtf::parse(sample()).unwrap();
        assert_eq!(full.find(KIND_FUNC, "f").map(|(id, _)| id), Some(7));
        let names = [
            BtfName::Typedef("btf_trace_tp".to_owned()),
            BtfName::Func("f".to_owned()),
            BtfName::Func("missing".to_owned()),
        ];
        let btf = full.into_aya_for(&names).unwrap();
        // What aya holds (aya's `BtfKind` is not public: read back by this reader).
        let held = KernelBtf::parse(btf.to_bytes()).unwrap();
        let id = |kind, name| held.find(kind, name).map(|(id, _)| id);
        assert_eq!(id(KIND_TYPEDEF, "btf_trace_tp"), Some(5));
        assert_eq!(id(KIND_FUNC, "f"), Some(7));
        // Not looked up, or not in the kernel: not found, as aya's load then says.
        assert_eq!(id(KIND_FUNC, "missing"), None);
        assert_eq!(id(KIND_STRUCT, "s"), None);
        // Nothing after the highest id wanted.
        assert_eq!(held.size().0, 7);
    }

    #[test]
    fn reads_this_kernels_btf_when_there_is_one() {
        let Ok(btf) = KernelBtf::from_sys_fs() else {
            return; // no BTF on this machine: nothing to compare with
        };
        let params = btf
            .function_params("tcp_sendmsg")
            .expect("tcp_sendmsg in BTF");
        assert_eq!(params.first().map(String::as_str), Some("sk"));
        assert!(btf.member_offset("sock_common", "skc_cookie").is_some());
        let (types, bytes) = btf.size();
        assert!(
            types > 10_000 && bytes > 1_000_000,
            "{types} types, {bytes} bytes"
        );
        let (id, _) = btf.find(KIND_FUNC, "tcp_sendmsg").unwrap();
        let btf = btf
            .into_aya_for(&[BtfName::Func("tcp_sendmsg".to_owned())])
            .expect("aya parses the reduced BTF");
        let held = KernelBtf::parse(btf.to_bytes()).unwrap();
        assert_eq!(
            held.find(KIND_FUNC, "tcp_sendmsg").map(|(id, _)| id),
            Some(id)
        );
    }
}
