//! The few facts the loader needs from the running kernel's BTF (`/sys/kernel/btf/vmlinux`):
//! which BTF tracepoints exist, the parameter names of traced functions and the offset of a
//! struct member. A minimal reader of the BTF type section (aya's own `Btf` keeps its type
//! lookups private); it never interprets more than names, kinds and member offsets.
//!
//! Format: <https://docs.kernel.org/bpf/btf.html>.
use std::{collections::HashMap, fs, io, path::Path};

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;

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

/// One type: its kind, name and the kind-specific words after the common header.
#[derive(Debug, Clone)]
struct Type {
    kind: u32,
    kind_flag: bool,
    name: String,
    /// `size` or `type`, depending on the kind.
    size_or_ref: u32,
    /// Members (struct/union: name, type, offset) or parameters (proto: name, type, 0).
    members: Vec<(String, u32, u32)>,
}

/// The types of a kernel's BTF, by id, and the ids of named types.
#[derive(Debug)]
pub struct KernelBtf {
    types: Vec<Type>,
    by_name: HashMap<(u32, String), u32>,
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

fn string_at(strings: &[u8], offset: u32) -> String {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    strings.get(start..).map_or_else(String::new, |rest| {
        let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end]).into_owned()
    })
}

impl KernelBtf {
    /// Reads the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        Self::from_file(Path::new("/sys/kernel/btf/vmlinux"))
    }

    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    /// Parses a little-endian BTF blob.
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if u16_at(data, 0)? != MAGIC {
            return Err(BtfError::Malformed("bad magic (not little-endian BTF?)"));
        }
        let header_len = usize_at(data, 4)?;
        let (type_off, type_len) = (usize_at(data, 8)?, usize_at(data, 12)?);
        let (str_off, str_len) = (usize_at(data, 16)?, usize_at(data, 20)?);
        let section = |off: usize, len: usize| {
            data.get(header_len + off..header_len + off + len)
                .ok_or(BtfError::Malformed("section outside the data"))
        };
        let type_data = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?;

        // Id 0 is `void`.
        let mut types = vec![Type {
            kind: 0,
            kind_flag: false,
            name: String::new(),
            size_or_ref: 0,
            members: Vec::new(),
        }];
        let mut at = 0;
        while at < type_data.len() {
            let name = string_at(strings, u32_at(type_data, at)?);
            let info = u32_at(type_data, at + 4)?;
            let size_or_ref = u32_at(type_data, at + 8)?;
            at += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = usize::try_from(info & 0xffff).unwrap_or(0);
            let mut members = Vec::new();
            match kind {
                // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG
                2 | 7..=12 | 16 | 18 => {}
                // INT, VAR, DECL_TAG
                1 | 14 | 17 => at += 4,
                3 => at += 12, // ARRAY
                KIND_STRUCT | KIND_UNION => {
                    for _ in 0..vlen {
                        members.push((
                            string_at(strings, u32_at(type_data, at)?),
                            u32_at(type_data, at + 4)?,
                            u32_at(type_data, at + 8)?,
                        ));
                        at += 12;
                    }
                }
                6 => at += 8 * vlen, // ENUM
                KIND_FUNC_PROTO => {
                    for _ in 0..vlen {
                        members.push((
                            string_at(strings, u32_at(type_data, at)?),
                            u32_at(type_data, at + 4)?,
                            0,
                        ));
                        at += 8;
                    }
                }
                15 | 19 => at += 12 * vlen, // DATASEC, ENUM64
                other => return Err(BtfError::UnknownKind(other)),
            }
            types.push(Type {
                kind,
                kind_flag: info >> 31 == 1,
                name,
                size_or_ref,
                members,
            });
        }
        let mut by_name = HashMap::new();
        for (id, ty) in types.iter().enumerate() {
            if !ty.name.is_empty() {
                let id = u32::try_from(id).map_err(|_| BtfError::Malformed("too many types"))?;
                by_name.entry((ty.kind, ty.name.clone())).or_insert(id);
            }
        }
        Ok(Self { types, by_name })
    }

    fn get(&self, id: u32) -> Option<&Type> {
        self.types.get(usize::try_from(id).ok()?)
    }

    /// Does the kernel have the BTF tracepoint `name` (its `btf_trace_<name>` typedef)?
    #[must_use]
    pub fn has_tracepoint(&self, name: &str) -> bool {
        self.by_name
            .contains_key(&(KIND_TYPEDEF, format!("btf_trace_{name}")))
    }

    /// The parameter names of the kernel function `name`, if BTF describes it.
    #[must_use]
    pub fn function_params(&self, name: &str) -> Option<Vec<String>> {
        let func = self.get(*self.by_name.get(&(KIND_FUNC, name.to_owned()))?)?;
        let proto = self.get(func.size_or_ref)?;
        (proto.kind == KIND_FUNC_PROTO)
            .then(|| proto.members.iter().map(|(n, _, _)| n.clone()).collect())
    }

    /// Byte offset of `member` in the struct `name`, looking into anonymous members.
    #[must_use]
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u32> {
        let id = *self.by_name.get(&(KIND_STRUCT, name.to_owned()))?;
        self.find_member(id, member, 0).map(|bits| bits / 8)
    }

    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<u32> {
        let ty = self.get(id)?;
        if depth > 8 || (ty.kind != KIND_STRUCT && ty.kind != KIND_UNION) {
            return None;
        }
        for (name, member_type, offset) in &ty.members {
            // With kind_flag the low 24 bits are the bit offset, the high 8 a bitfield size.
            let bits = if ty.kind_flag {
                offset & 0x00ff_ffff
            } else {
                *offset
            };
            if name == member {
                return Some(bits);
            }
            if name.is_empty() {
                if let Some(inner) = self.find_member(*member_type, member, depth + 1) {
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
    use super::{KIND_FUNC, KIND_FUNC_PROTO, KIND_TYPEDEF, MAGIC};

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

    /// A BTF blob: the header, then the `types` and `strings` sections.
    pub fn frame(types: &[u8], strings: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        let len = |n: usize| u32::try_from(n).unwrap();
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
        testing::frame(&types, strings)
    }

    #[test]
    fn reads_tracepoints_functions_and_members() {
        let btf = KernelBtf::parse(&sample()).unwrap();
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
        assert!(KernelBtf::parse(b"not btf at all, not at all").is_err());
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
    }
}
