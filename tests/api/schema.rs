use std::process::Command;

/// The committed `schema.graphql` is exactly what `contact-gateway schema` prints.
#[test]
fn committed_schema_equals_the_binary_output() {
    let output = Command::new(env!("CARGO_BIN_EXE_contact-gateway"))
        .arg("schema")
        .output()
        .expect("binary runs");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql is committed");
    assert!(
        printed == committed,
        "schema.graphql differs from `contact-gateway schema`; regenerate it with\n  cargo run -- schema > schema.graphql"
    );
    for name in [
        "@key(fields: \"id\")",
        "enum ProviderId",
        "enum Capability",
        "contact(id: ID!",
        "contacts(providers: [ProviderId!], filter: ContactFilter, first: Int = 20, after: String",
        "type Query",
        "normalizePhone(phone: String!, defaultRegion: String): PhoneNormalization!",
        "scalar DateTime",
        "scalar JSON",
        "contactChanged(providers: [ProviderId!], filter: ContactFilter): ContactChange!",
        "enum ChangeKind",
    ] {
        assert!(printed.contains(name), "the SDL lacks {name}");
    }
}
