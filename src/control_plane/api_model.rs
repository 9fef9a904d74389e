//! The admin API's model: every operation of AWS's IAM service model, EKS's pod identity
//! association operations and iamlet's own actions, each with its input members (AWS's name,
//! the AWS CLI's option name, the shape, whether it is required, and the first sentence of
//! AWS's documentation).
//!
//! The model is `api_model.json`, written from the pinned botocore's service models by
//! `tests/aws/api_model.py` (the AWS suite fails when the committed file differs from what the
//! script writes), and compiled in. `iamlet admin` reads it to refuse options an operation does
//! not take before any call, to convert values to their shapes, and to print help offline.
//! Whether the control plane implements an operation is the dispatcher's `ACTIONS` to say.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::Deserialize;

mod check;

use check::Pattern;
pub use check::{location_name, InputError};

/// The model, compiled in.
const MODEL_JSON: &str = include_str!("api_model.json");

static MODEL: LazyLock<Result<ApiModel, String>> = LazyLock::new(|| {
    ApiModel::from_json(MODEL_JSON).map_err(|e| format!("the compiled-in API model: {e}"))
});

/// Where an operation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// AWS IAM.
    Iam,
    /// Amazon EKS (pod identity associations).
    Eks,
    /// IAM Access Analyzer (policy checks, unused access, policy generation).
    #[serde(rename = "accessanalyzer")]
    AccessAnalyzer,
    /// AWS CloudTrail (the event history).
    #[serde(rename = "cloudtrail")]
    CloudTrail,
    /// iamlet's own.
    Iamlet,
}

/// One operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// AWS's name (`CreateUser`).
    pub name: String,
    /// Whose operation it is.
    pub service: Service,
    /// The AWS CLI's name (`create-user`).
    pub cli: String,
    /// The first sentence of AWS's documentation.
    pub doc: String,
    /// The input members, in the model's order.
    pub members: Vec<Member>,
    /// How the AWS CLI pages through its results, for a listing.
    #[serde(default)]
    pub paginator: Option<Paginator>,
    /// The response's top-level members, for AWS's operations (iamlet's own have none listed).
    #[serde(default)]
    pub output: Vec<OutputMember>,
}

/// A top-level member of an operation's response.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputMember {
    /// AWS's name (`User`).
    pub name: String,
    /// Whether every response has it.
    pub required: bool,
}

/// botocore's paginator for an operation (`paginators-1.json`), every key a member name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paginator {
    /// The request members that resume a listing (`Marker`).
    pub input_token: Vec<String>,
    /// The response members that say where the next page starts, one per input token.
    pub output_token: Vec<String>,
    /// The response member that is true while more pages follow (`IsTruncated`).
    pub more_results: Option<String>,
    /// The request member that bounds a page (`MaxItems`).
    pub limit_key: Option<String>,
    /// The response lists joined across pages; the first is counted by `--max-items`.
    pub result_key: Vec<String>,
    /// Response members taken from the first page only (`Group` of `GetGroup`).
    pub non_aggregate_keys: Vec<String>,
}

/// An input member of an operation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// AWS's name (`UserName`).
    pub name: String,
    /// The AWS CLI's option, without `--` (`user-name`).
    pub cli: String,
    /// The shape's name in [`ApiModel::shape`].
    pub shape: String,
    /// Whether the operation requires it.
    pub required: bool,
    /// The first sentence of AWS's documentation.
    #[serde(default)]
    pub doc: String,
}

/// What kind of value a shape holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    /// Text.
    String,
    /// A 32-bit integer.
    Integer,
    /// A 64-bit integer.
    Long,
    /// `true` or `false`.
    Boolean,
    /// A date and time.
    Timestamp,
    /// Bytes (base64 in JSON).
    Blob,
    /// A list of `member`.
    List,
    /// Named members.
    Structure,
    /// `key` to `value`.
    Map,
}

/// A member of a structure shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Its name (`Key`).
    pub name: String,
    /// Its shape.
    pub shape: String,
    /// Whether the structure requires it.
    pub required: bool,
}

/// A shape and its constraints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    /// The kind of value.
    #[serde(rename = "type")]
    pub kind: ShapeKind,
    /// The least length, size or value.
    #[serde(default)]
    pub min: Option<i64>,
    /// The greatest length, size or value.
    #[serde(default)]
    pub max: Option<i64>,
    /// The pattern a string matches (AWS's regular expression).
    #[serde(default)]
    pub pattern: Option<String>,
    /// The values a string may take.
    #[serde(default, rename = "enum")]
    pub values: Vec<String>,
    /// A secret: never echoed.
    #[serde(default)]
    pub sensitive: bool,
    /// A structure's members.
    #[serde(default)]
    pub members: Vec<Field>,
    /// A list's member shape.
    #[serde(default)]
    pub member: Option<String>,
    /// A map's key shape.
    #[serde(default)]
    pub key: Option<String>,
    /// A map's value shape.
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    source: String,
    operations: Vec<Operation>,
    shapes: BTreeMap<String, Shape>,
}

/// The admin API's model, indexed.
#[derive(Debug)]
pub struct ApiModel {
    source: String,
    operations: Vec<Operation>,
    by_name: HashMap<String, usize>,
    by_cli: HashMap<String, usize>,
    shapes: BTreeMap<String, Shape>,
    /// Every shape's pattern, compiled once, by its text.
    patterns: HashMap<String, Pattern>,
}

// === impl ApiModel ===

impl ApiModel {
    /// The compiled-in model (parsed on first use).
    ///
    /// # Errors
    /// When the compiled-in file does not parse, which a unit test rules out.
    pub fn embedded() -> Result<&'static ApiModel, &'static str> {
        MODEL.as_ref().map_err(String::as_str)
    }

    /// Parses and checks a model: names unique, every shape a member names present, every
    /// pattern compiles.
    fn from_json(text: &str) -> Result<Self, String> {
        let file: ModelFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut by_name = HashMap::new();
        let mut by_cli = HashMap::new();
        for (i, op) in file.operations.iter().enumerate() {
            if by_name.insert(op.name.clone(), i).is_some() {
                return Err(format!("operation {} appears twice", op.name));
            }
            if by_cli.insert(op.cli.clone(), i).is_some() {
                return Err(format!("command {} appears twice", op.cli));
            }
            if let Some(paginator) = &op.paginator {
                let named = |key: &String| op.members.iter().any(|m| &m.name == key);
                if !paginator
                    .input_token
                    .iter()
                    .chain(&paginator.limit_key)
                    .all(named)
                    || paginator.input_token.len() != paginator.output_token.len()
                    || paginator.result_key.is_empty()
                {
                    return Err(format!(
                        "{}'s paginator names members it does not have",
                        op.name
                    ));
                }
            }
            for member in &op.members {
                if !file.shapes.contains_key(&member.shape) {
                    return Err(format!(
                        "{}.{} names the unknown shape {}",
                        op.name, member.name, member.shape
                    ));
                }
            }
        }
        for (name, shape) in &file.shapes {
            let refs = shape
                .members
                .iter()
                .map(|f| &f.shape)
                .chain(&shape.member)
                .chain(&shape.key)
                .chain(&shape.value);
            for target in refs {
                if !file.shapes.contains_key(target) {
                    return Err(format!("shape {name} names the unknown shape {target}"));
                }
            }
        }
        let mut patterns = HashMap::new();
        for shape in file.shapes.values() {
            if let Some(java) = &shape.pattern {
                if !patterns.contains_key(java) {
                    patterns.insert(java.clone(), Pattern::compile(java)?);
                }
            }
        }
        Ok(Self {
            source: file.source,
            operations: file.operations,
            by_name,
            by_cli,
            shapes: file.shapes,
            patterns,
        })
    }

    /// Where the model was read from (the botocore version).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every operation: IAM's in name order, then EKS's, then iamlet's.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation named `name` (`CreateUser`).
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.by_name.get(name).and_then(|&i| self.operations.get(i))
    }

    /// The operation of the AWS CLI command `cli` (`create-user`).
    pub fn command(&self, cli: &str) -> Option<&Operation> {
        self.by_cli.get(cli).and_then(|&i| self.operations.get(i))
    }

    /// The shape named `name`.
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }
}

// === impl Operation ===

impl Operation {
    /// The member whose AWS CLI option is `--cli`.
    pub fn member_by_cli(&self, cli: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.cli == cli)
    }
}

/// The candidate closest to `typed` by edit distance, when it is close enough to be a typo
/// (at most a third of its length, and at least 1).
pub fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (typed.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(typed, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, with a transposition counted as one edit (`boundry` → `boundary` is
/// one insertion; `pahts` → `paths` one transposition).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the dynamic programme: two back (for transpositions), one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for (i, &ca) in a.iter().enumerate() {
        if let Some(first) = current.first_mut() {
            *first = i + 1;
        }
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous
                .get(j)
                .map_or(usize::MAX, |d| d + usize::from(ca != cb));
            let deletion = previous.get(j + 1).map_or(usize::MAX, |d| d + 1);
            let insertion = current.get(j).map_or(usize::MAX, |d| d + 1);
            let mut best = substitution.min(deletion).min(insertion);
            let transposed =
                i > 0 && j > 0 && a.get(i - 1) == Some(&cb) && b.get(j - 1) == Some(&ca);
            if transposed {
                best = best.min(before.get(j - 1).map_or(usize::MAX, |d| d + 1));
            }
            if let Some(cell) = current.get_mut(j + 1) {
                *cell = best;
            }
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous.get(b.len()).copied().unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_model_loads_and_knows_iam_eks_and_iamlet() {
        let model = ApiModel::embedded().unwrap();
        assert!(
            model.source().starts_with("botocore "),
            "{}",
            model.source()
        );
        let create_user = model.command("create-user").unwrap();
        assert_eq!(create_user.name, "CreateUser");
        assert_eq!(create_user.service, Service::Iam);
        let user_name = create_user.member_by_cli("user-name").unwrap();
        assert!(user_name.required);
        let shape = model.shape(&user_name.shape).unwrap();
        assert_eq!(shape.kind, ShapeKind::String);
        assert_eq!((shape.min, shape.max), (Some(1), Some(64)));
        assert!(create_user.member_by_cli("permissions-boundary").is_some());
        assert!(create_user.member_by_cli("permissions-boundry").is_none());

        let eks = model.operation("CreatePodIdentityAssociation").unwrap();
        assert_eq!(eks.service, Service::Eks);
        assert_eq!(
            eks.member_by_cli("cluster-name").unwrap().name,
            "clusterName"
        );

        let oidc = model.command("create-open-id-connect-provider").unwrap();
        assert!(
            oidc.member_by_cli("jwks").unwrap().required,
            "iamlet's addition"
        );
        assert_eq!(
            model.operation("RevokeSessions").unwrap().service,
            Service::Iamlet
        );
        // Every action the control plane dispatches is in the model, so the CLI knows its
        // options.
        for action in super::super::dispatch::ACTIONS {
            assert!(
                model.operation(action).is_some(),
                "{action} is not in the model"
            );
        }
    }

    #[test]
    fn a_model_naming_an_unknown_shape_is_refused() {
        let text = r#"{"source":"t","operations":[{"name":"A","service":"iam","cli":"a","doc":"",
            "members":[{"name":"X","cli":"x","shape":"missing","required":false}]}],"shapes":{}}"#;
        assert!(ApiModel::from_json(text)
            .unwrap_err()
            .contains("unknown shape missing"));
        let twice = r#"{"source":"t","operations":[{"name":"A","service":"iam","cli":"a","doc":"","members":[]},
            {"name":"A","service":"iam","cli":"b","doc":"","members":[]}],"shapes":{}}"#;
        assert!(ApiModel::from_json(twice)
            .unwrap_err()
            .contains("appears twice"));
    }

    #[test]
    fn typos_find_the_option_meant() {
        let options = ["path", "user-name", "permissions-boundary", "tags"];
        assert_eq!(
            closest("permissions-boundry", options),
            Some("permissions-boundary")
        );
        assert_eq!(closest("pathh", options), Some("path"));
        assert_eq!(closest("usre-name", options), Some("user-name"));
        assert_eq!(closest("region", options), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }
}
