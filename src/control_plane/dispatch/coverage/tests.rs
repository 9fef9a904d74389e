use super::*;

/// The README, read from the source tree.
fn readme_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

#[test]
fn the_readme_lists_what_the_model_table_says() {
    let model = ApiModel::embedded().unwrap();
    let expected = markdown(model);
    let path = readme_path();
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(BEGIN)
        .expect("the README has the coverage markers");
    let end = readme
        .find(END)
        .expect("the README has the coverage end marker")
        + END.len();
    let current = &readme[start..end];
    if current != expected {
        if std::env::var_os("IAMLET_BLESS").is_some() {
            let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!(
                "the README's coverage section is not what the model table says; \
                 run `IAMLET_BLESS=1 cargo test --lib coverage` to regenerate it"
            );
        }
    }
}

#[test]
fn served_and_refused_operations_are_listed_with_counts() {
    let model = ApiModel::embedded().unwrap();
    let text = markdown(model);
    assert!(text.starts_with(BEGIN) && text.ends_with(END));
    assert!(text.contains("`CreateUser`"), "{text}");
    assert!(
        text.contains("| `UploadServerCertificate`, `GetServerCertificate`"),
        "{text}"
    );
    let iam = model
        .operations()
        .iter()
        .filter(|op| op.service == Service::Iam)
        .count();
    assert!(
        text.contains(&format!("of the {iam} operations of AWS's IAM model")),
        "{text}"
    );
}
