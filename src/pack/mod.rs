//! Rule packs: TOML + SQL expressions + codelists -> a checked model (no Arrow here).
