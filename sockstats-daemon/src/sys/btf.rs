//! Member offsets of kernel structs, from the kernel's own BTF (`/sys/kernel/btf/vmlinux`), for
//! the few fields the kernel programs read whose place changes between kernels and configs.
//!
//! Only what that needs is parsed: the header, and each type's fixed part and trailing data
//! (to step over it), keeping struct members. Format:
//! <https://docs.kernel.org/bpf/btf.html>
use std::{fs, io, path::Path};

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("the kernel's BTF is malformed: {0}")]
    Malformed(&'static str),
}

/// The parsed parts of a BTF blob.
pub struct KernelBtf {
    data: Vec<u8>,
    types_start: usize,
    types_end: usize,
    strings_start: usize,
    strings_end: usize,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

impl KernelBtf {
    /// The running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let path = Path::new("/sys/kernel/btf/vmlinux");
        let data = fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(data)
    }

    /// Parses a little-endian BTF blob.
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        let malformed = BtfError::Malformed;
        if data.get(0..2) != Some(&MAGIC.to_le_bytes()[..]) {
            return Err(malformed("bad magic (or a big-endian kernel)"));
        }
        let field = |at| u32_at(&data, at).ok_or(malformed("truncated header"));
        let header_len = field(4)? as usize;
        let (type_off, type_len) = (field(8)? as usize, field(12)? as usize);
        let (str_off, str_len) = (field(16)? as usize, field(20)? as usize);
        let types_start = header_len + type_off;
        let strings_start = header_len + str_off;
        if types_start + type_len > data.len() || strings_start + str_len > data.len() {
            return Err(malformed("sections past the end"));
        }
        Ok(Self {
            types_end: types_start + type_len,
            strings_end: strings_start + str_len,
            data,
            types_start,
            strings_start,
        })
    }

    fn string(&self, offset: u32) -> Option<&str> {
        let start = self.strings_start + offset as usize;
        let bytes = self.data.get(start..self.strings_end)?;
        let end = bytes.iter().position(|b| *b == 0)?;
        std::str::from_utf8(&bytes[..end]).ok()
    }

    /// The byte offset of `member` in `struct name` (the first struct of that name).
    #[must_use]
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u32> {
        let mut at = self.types_start;
        while at + 12 <= self.types_end {
            let name_off = u32_at(&self.data, at)?;
            let info = u32_at(&self.data, at + 4)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let members_at = at + 12;
            at = members_at
                + match kind {
                    1 | 14 | 17 => 4,             // int, var, decl_tag
                    3 => 12,                      // array
                    4 | 5 | 15 | 19 => 12 * vlen, // struct, union, datasec, enum64
                    6 | 13 => 8 * vlen,           // enum, func_proto
                    2 | 7..=12 | 16 | 18 => 0, // ptr, fwd, typedef, qualifiers, func, float, type_tag
                    _ => return None,
                };
            if kind != KIND_STRUCT || self.string(name_off) != Some(name) {
                continue;
            }
            for index in 0..vlen {
                let entry = members_at + 12 * index;
                if self.string(u32_at(&self.data, entry)?) == Some(member) {
                    let offset = u32_at(&self.data, entry + 8)?;
                    let bits = if kind_flag {
                        offset & 0x00ff_ffff
                    } else {
                        offset
                    };
                    return (bits % 8 == 0).then_some(bits / 8);
                }
            }
            return None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with `struct sock { int a; void *sk_socket; }` (a pointer at byte 8).
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0sock\0a\0sk_socket\0";
        let mut types = Vec::new();
        let push = |types: &mut Vec<u8>, words: &[u32]| {
            for word in words {
                types.extend_from_slice(&word.to_le_bytes());
            }
        };
        push(&mut types, &[1, 1 << 24, 4, 32]); // [1] int, 4 bytes + int data
        push(&mut types, &[0, 2 << 24, 0]); // [2] void *
        push(&mut types, &[5, (4 << 24) | 2, 16]); // [3] struct sock, 2 members, 16 bytes
        push(&mut types, &[10, 1, 0]); // a: int at bit 0
        push(&mut types, &[12, 2, 64]); // sk_socket: void * at bit 64
        let mut data = Vec::new();
        data.extend_from_slice(&MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]); // version, flags
        let (types_len, strings_len) = (
            u32::try_from(types.len()).unwrap(),
            u32::try_from(strings.len()).unwrap(),
        );
        for word in [24u32, 0, types_len, types_len, strings_len] {
            data.extend_from_slice(&word.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(strings);
        data
    }

    #[test]
    fn finds_member_offsets() {
        let btf = KernelBtf::parse(blob()).unwrap();
        assert_eq!(btf.member_offset("sock", "sk_socket"), Some(8));
        assert_eq!(btf.member_offset("sock", "a"), Some(0));
        assert_eq!(btf.member_offset("sock", "missing"), None);
        assert_eq!(btf.member_offset("socket", "file"), None);
        assert!(KernelBtf::parse(vec![0; 4]).is_err());
    }

    #[test]
    fn reads_this_kernels_struct_sock() {
        // Every kernel these programs load on has BTF; the offsets are small and aligned.
        let btf = KernelBtf::from_sys_fs().unwrap();
        let sk_socket = btf.member_offset("sock", "sk_socket").unwrap();
        let file = btf.member_offset("socket", "file").unwrap();
        assert!(sk_socket > 0 && sk_socket % 8 == 0, "{sk_socket}");
        assert!(file > 0 && file % 8 == 0, "{file}");
    }
}
