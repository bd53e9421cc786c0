//! Every global of the programs, declared from the one table in `sockstats-common`
//! (`for_each_global!`): the daemon sets them at load time and the verifier sees them as
//! constants, so it never checks a branch the running kernel cannot take. The modules that
//! read one import it from here.
use aya_ebpf::Global;

macro_rules! declare_globals {
    ($( $(#[$doc:meta])* $name:ident: $type:ty = $initial:expr; )*) => {
        $(
            $(#[$doc])*
            #[no_mangle]
            pub static $name: Global<$type> = Global::new($initial);
        )*
    };
}

sockstats_common::for_each_global!(declare_globals);
