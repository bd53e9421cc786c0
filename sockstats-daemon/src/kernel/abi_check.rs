//! The built kernel object against the ABI tables of `sockstats-common` (`abi`): every map,
//! global and program the daemon expects is in the object, with the kind, sizes, capacity
//! and section the tables give, and the object has nothing the tables do not name. Runs in
//! plain `cargo test` (it only parses the embedded object).
use std::collections::BTreeSet;

use aya_obj::{maps::PinningType, Object, ProgramSection};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use sockstats_common::abi::{
    map, program, FExitBody, MapKind, ProgramKind, FEXIT_PROGRAMS, GLOBALS,
};

use super::loader::OBJECT;

/// Maps of aya-log (the kernel programs' logging), not of sockstats.
const AYA_LOG_MAPS: [&str; 2] = ["AYA_LOGS", "AYA_LOG_BUF"];

fn parsed() -> Option<Object> {
    if OBJECT.is_empty() {
        eprintln!("built with AYA_BUILD_SKIP=1: no kernel object to check");
        return None;
    }
    Some(Object::parse(OBJECT).expect("the kernel object parses"))
}

/// The name of the ELF section at `index`.
fn section_name(elf: &object::File<'_>, index: usize) -> String {
    elf.section_by_index(object::SectionIndex(index))
        .and_then(|section| section.name().map(str::to_owned))
        .expect("a program's section has a name")
}

#[test]
fn every_map_is_in_the_object_as_the_table_says() {
    let Some(object) = parsed() else { return };
    for spec in map::ALL {
        let found = object
            .maps
            .get(spec.name)
            .unwrap_or_else(|| panic!("map {} is not in the object", spec.name));
        let what = spec.name;
        assert_eq!(found.map_type(), spec.kind as u32, "{what}: kind");
        assert_eq!(found.key_size() as usize, spec.key_size, "{what}: key size");
        assert_eq!(
            found.value_size() as usize,
            spec.value_size,
            "{what}: value size"
        );
        assert_eq!(found.map_flags(), spec.flags, "{what}: flags");
        if spec.kind != MapKind::SkStorage {
            assert_eq!(found.max_entries(), spec.max_entries, "{what}: capacity");
        }
        let pinning = if spec.pinned {
            PinningType::ByName
        } else {
            PinningType::None
        };
        assert_eq!(found.pinning(), pinning, "{what}: pinning");
    }
    let named: BTreeSet<&str> = map::ALL.iter().map(|spec| spec.name).collect();
    let unnamed: Vec<&String> = object
        .maps
        .keys()
        // `.bss`, `.data`, `.rodata`: the globals (checked below).
        .filter(|name| !name.starts_with('.') && !AYA_LOG_MAPS.contains(&name.as_str()))
        .filter(|name| !named.contains(name.as_str()))
        .collect();
    assert!(unnamed.is_empty(), "maps not in the table: {unnamed:?}");
}

#[test]
fn every_global_is_in_the_object_with_its_size() {
    if OBJECT.is_empty() {
        return;
    }
    let elf = object::File::parse(OBJECT).expect("the kernel object is an ELF file");
    for global in GLOBALS {
        let symbol = elf
            .symbols()
            .find(|symbol| symbol.name() == Ok(global.name))
            .unwrap_or_else(|| panic!("global {} is not in the object", global.name));
        assert_eq!(symbol.size(), global.size as u64, "{}: size", global.name);
        let section = symbol
            .section_index()
            .map(|index| section_name(&elf, index.0))
            .unwrap_or_default();
        assert!(
            [".rodata", ".data", ".bss"]
                .iter()
                .any(|data| section.starts_with(data)),
            "{} is in {section:?}, not a data section",
            global.name
        );
    }
}

/// What aya-obj makes of the section of a program of `kind`.
fn section_matches(kind: ProgramKind, section: &ProgramSection) -> bool {
    matches!(
        (kind, section),
        (ProgramKind::BtfTracePoint, ProgramSection::BtfTracePoint)
            | (ProgramKind::FEntry, ProgramSection::FEntry { .. })
            | (ProgramKind::FExit, ProgramSection::FExit { .. })
            | (ProgramKind::CgroupSock, ProgramSection::CgroupSock { .. })
            | (ProgramKind::CgroupSkb, ProgramSection::CgroupSkb { .. })
            | (
                ProgramKind::CgroupSockopt,
                ProgramSection::CgroupSockopt { .. }
            )
            | (ProgramKind::Iter, ProgramSection::Iter { .. })
    )
}

/// Every program the tables name: (name, kind, target).
fn expected_programs() -> Vec<(&'static str, ProgramKind, &'static str)> {
    let mut expected: Vec<_> = program::ALL
        .iter()
        .map(|spec| (spec.name, spec.kind, spec.target))
        .collect();
    for fexit in FEXIT_PROGRAMS {
        expected.push((fexit.program, ProgramKind::FExit, fexit.function));
        if let FExitBody::SendIfEntered { entry } = fexit.body {
            expected.push((entry, ProgramKind::FEntry, fexit.function));
        }
    }
    expected
}

#[test]
fn every_program_is_in_the_object_at_its_section() {
    let Some(object) = parsed() else { return };
    let elf = object::File::parse(OBJECT).expect("the kernel object is an ELF file");
    let expected = expected_programs();
    for (name, kind, target) in &expected {
        let found = object
            .programs
            .get(*name)
            .unwrap_or_else(|| panic!("program {name} is not in the object"));
        assert!(
            section_matches(*kind, &found.section),
            "{name}: a {kind:?} program, the object has {:?}",
            found.section
        );
        let section = section_name(&elf, found.section_index);
        assert_eq!(
            section,
            format!("{}/{target}", kind.section_prefix()),
            "{name}: section"
        );
    }
    let named: BTreeSet<&str> = expected.iter().map(|(name, _, _)| *name).collect();
    let unnamed: Vec<&String> = object
        .programs
        .keys()
        .filter(|name| !named.contains(name.as_str()))
        .collect();
    assert!(
        unnamed.is_empty(),
        "programs not in the tables: {unnamed:?}"
    );
}

#[test]
fn the_fexit_programs_read_slots_their_functions_have() {
    for fexit in FEXIT_PROGRAMS {
        // Slot `params` is the return value; `flags` is an argument before it, `sk` is slot 0.
        assert!(
            fexit.params >= 3,
            "{}: (sk, msg, len) at least",
            fexit.program
        );
        if let Some(flags) = fexit.flags_at() {
            assert!(
                flags > 0 && flags < fexit.params,
                "{}: flags slot",
                fexit.program
            );
        }
    }
}
