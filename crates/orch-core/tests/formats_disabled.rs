//! Built without the `yaml` and `toml` features, orch-core still reads JSON, and a YAML or
//! TOML file gets an error naming the missing feature. Run by `cargo xtask ci` as
//! `cargo test -p orch-core --no-default-features --test formats_disabled`.
#![cfg(not(any(feature = "yaml", feature = "toml")))]

use orch_core::{Format, LoadError, Workflow};

#[test]
fn yaml_and_toml_files_name_the_feature_they_need() {
    let dir = std::env::temp_dir().join(format!("orch-core-formats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    for (name, format, feature) in [
        ("w.yaml", Format::Yaml, "yaml"),
        ("w.toml", Format::Toml, "toml"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, "workflow_id = \"w\"\n").expect("write");
        match Workflow::from_path(&path) {
            Err(error @ LoadError::FormatDisabled { .. }) => {
                let LoadError::FormatDisabled { format: f, .. } = &error else {
                    unreachable!()
                };
                assert_eq!(*f, format);
                assert!(
                    error.to_string().contains(&format!("`{feature}` feature")),
                    "{error}"
                );
            }
            other => panic!("expected FormatDisabled, got {other:?}"),
        }
    }
    let path = dir.join("w.json");
    std::fs::write(
        &path,
        r#"{"workflow_id": "w", "tasks": {"a": {"task_type": "t"}}}"#,
    )
    .expect("write");
    let workflow = Workflow::from_path(&path).expect("JSON needs no feature");
    assert_eq!(workflow.len(), 1);
    std::fs::remove_dir_all(&dir).ok();
}
