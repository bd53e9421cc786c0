//! Every map of the programs, declared from the one table in `sockstats-common`
//! (`for_each_map!`), which the daemon's constants and its check of the built object come
//! from too. The modules that use a map import it from here.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
};

use crate::state::SkStorageDef;

macro_rules! declare_maps {
    ($(
        $(#[$doc:meta])*
        $name:ident: $kind:ident<$key:ty, $value:ty> = $ctor:ident($capacity:expr, $flags:expr);
    )*) => {
        $( declare_maps!(@map [$(#[$doc])*] $name $kind $key, $value, $ctor, $capacity, $flags); )*
    };
    (@map [$($doc:tt)*] $name:ident HashMap $key:ty, $value:ty, $ctor:ident, $capacity:expr, $flags:expr) => {
        $($doc)*
        #[map]
        pub static $name: HashMap<$key, $value> = HashMap::$ctor($capacity, $flags);
    };
    (@map [$($doc:tt)*] $name:ident Array $key:ty, $value:ty, $ctor:ident, $capacity:expr, $flags:expr) => {
        $($doc)*
        #[map]
        pub static $name: Array<$value> = Array::$ctor($capacity, $flags);
    };
    (@map [$($doc:tt)*] $name:ident PerCpuArray $key:ty, $value:ty, $ctor:ident, $capacity:expr, $flags:expr) => {
        $($doc)*
        #[map]
        pub static $name: PerCpuArray<$value> = PerCpuArray::$ctor($capacity, $flags);
    };
    // The table's key is the trie key as a whole (prefix length and address); aya's trie
    // takes the address type.
    (@map [$($doc:tt)*] $name:ident LpmTrie $key:ty, $value:ty, $ctor:ident, $capacity:expr, $flags:expr) => {
        $($doc)*
        #[map]
        pub static $name: LpmTrie<[u8; 16], $value> = LpmTrie::$ctor($capacity, $flags);
        const _: () = assert!(
            size_of::<aya_ebpf::maps::lpm_trie::Key<[u8; 16]>>() == size_of::<$key>()
        );
    };
    // A ring buffer: its capacity is its size in bytes; no key, no value.
    (@map [$($doc:tt)*] $name:ident RingBuf $key:ty, $value:ty, $ctor:ident, $capacity:expr, $flags:expr) => {
        $($doc)*
        #[map]
        pub static $name: RingBuf = RingBuf::$ctor($capacity, $flags);
    };
    // A BTF-defined map (`.maps`): its kind, flags, key and value are in the definition's type.
    (@map [$($doc:tt)*] $name:ident SkStorage $key:ty, $value:ty, $ctor:ident, $capacity:expr, $flags:expr) => {
        $($doc)*
        #[link_section = ".maps"]
        #[no_mangle]
        pub static $name: SkStorageDef = SkStorageDef::new();
    };
}

sockstats_common::for_each_map!(declare_maps);
