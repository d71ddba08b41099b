//! The cluster configuration in Pacemaker's own terms: properties, nodes, resources and
//! constraints. [`crate::build`] makes it from a description; [`crate::xml`], [`crate::crm`] and
//! [`crate::pcs`] render this one model, so the three outputs cannot drift apart.

use std::fmt;

/// A complete `<configuration>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    /// Warnings rendered at the top of every output (fencing placeholders, fencing disabled).
    pub warnings: Vec<String>,
    /// `cib-bootstrap-options`.
    pub properties: Vec<NvPair>,
    pub nodes: Vec<ClusterNode>,
    pub resources: Vec<Resource>,
    pub constraints: Vec<Constraint>,
    /// `rsc_defaults` (`rsc-options`).
    pub rsc_defaults: Vec<NvPair>,
}

impl Configuration {
    /// Every primitive, clone children included, in configuration order.
    pub fn primitives(&self) -> impl Iterator<Item = &Primitive> {
        self.resources.iter().map(|resource| match resource {
            Resource::Primitive(primitive) => primitive,
            Resource::Clone(clone) => &clone.child,
        })
    }
}

/// A name/value pair (`nvpair`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvPair {
    pub name: String,
    pub value: String,
}

impl NvPair {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A `<node>` entry; its id must be the corosync node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: u32,
    pub name: String,
}

/// A resource agent: class, provider and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    Ocf { provider: String, kind: String },
    Stonith { kind: String },
    Systemd { kind: String },
    Lsb { kind: String },
}

impl Agent {
    pub fn ocf(provider: &str, kind: &str) -> Self {
        Self::Ocf {
            provider: provider.to_owned(),
            kind: kind.to_owned(),
        }
    }

    pub fn class(&self) -> &'static str {
        match self {
            Self::Ocf { .. } => "ocf",
            Self::Stonith { .. } => "stonith",
            Self::Systemd { .. } => "systemd",
            Self::Lsb { .. } => "lsb",
        }
    }

    pub fn provider(&self) -> Option<&str> {
        match self {
            Self::Ocf { provider, .. } => Some(provider),
            _ => None,
        }
    }

    pub fn kind(&self) -> &str {
        match self {
            Self::Ocf { kind, .. }
            | Self::Stonith { kind }
            | Self::Systemd { kind }
            | Self::Lsb { kind } => kind,
        }
    }
}

/// `class[:provider]:type`, as crm and pcs write it.
impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.provider() {
            Some(provider) => write!(f, "{}:{provider}:{}", self.class(), self.kind()),
            None => write!(f, "{}:{}", self.class(), self.kind()),
        }
    }
}

/// A role of a promotable clone instance (Pacemaker 2.1 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Started,
    Promoted,
    Unpromoted,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "Started",
            Self::Promoted => "Promoted",
            Self::Unpromoted => "Unpromoted",
        }
    }
}

/// One operation of a primitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    /// A Pacemaker interval (`0s` for non-recurring operations).
    pub interval: String,
    pub timeout: String,
    pub role: Option<Role>,
}

impl Operation {
    pub fn new(name: &'static str, interval: &str, timeout: &str) -> Self {
        Self {
            name,
            interval: interval.to_owned(),
            timeout: timeout.to_owned(),
            role: None,
        }
    }

    #[must_use]
    pub fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }
}

/// A primitive resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primitive {
    pub id: String,
    pub agent: Agent,
    /// Rendered as a comment right before the resource in every output.
    pub comment: Option<String>,
    pub params: Vec<NvPair>,
    pub meta: Vec<NvPair>,
    pub ops: Vec<Operation>,
}

/// A clone (promotable when its meta says so) of one primitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneResource {
    pub id: String,
    pub meta: Vec<NvPair>,
    pub child: Primitive,
}

impl CloneResource {
    pub fn is_promotable(&self) -> bool {
        self.meta
            .iter()
            .any(|pair| pair.name == "promotable" && pair.value == "true")
    }
}

/// A top-level resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Primitive(Primitive),
    Clone(CloneResource),
}

impl Resource {
    pub fn id(&self) -> &str {
        match self {
            Self::Primitive(primitive) => &primitive.id,
            Self::Clone(clone) => &clone.id,
        }
    }
}

/// A constraint score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Score {
    Infinity,
    MinusInfinity,
    Value(i64),
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Infinity => f.write_str("INFINITY"),
            Self::MinusInfinity => f.write_str("-INFINITY"),
            Self::Value(value) => write!(f, "{value}"),
        }
    }
}

/// An action named in an order constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Promote,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Promote => "promote",
        }
    }
}

/// How rule expressions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolOp {
    And,
    Or,
}

impl BoolOp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::And => "and",
            Self::Or => "or",
        }
    }
}

/// A comparison in a rule expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Lte,
    Eq,
}

impl Comparison {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lte => "lte",
            Self::Eq => "eq",
        }
    }
}

/// How a compared value is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Number,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
        }
    }
}

/// One expression of a location rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// The node attribute does not exist on the node.
    NotDefined { attribute: String },
    /// The node attribute compares as given.
    Compare {
        attribute: String,
        comparison: Comparison,
        value: String,
        value_type: ValueType,
    },
}

/// A location rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub score: Score,
    pub bool_op: BoolOp,
    pub expressions: Vec<Expression>,
}

/// Where a location constraint applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    Node { node: String, score: Score },
    Rule(Rule),
}

/// `rsc_location`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: String,
    pub rsc: String,
    pub role: Option<Role>,
    /// `resource-discovery=exclusive`: the resource is probed, and may run, only on the nodes
    /// this constraint names.
    pub exclusive: bool,
    pub placement: Placement,
}

/// `rsc_colocation`: `rsc` (in `rsc_role`) runs where `with_rsc` (in `with_role`) runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Colocation {
    pub id: String,
    pub rsc: String,
    pub with_rsc: String,
    pub with_role: Option<Role>,
    pub score: Score,
}

/// `rsc_order`, mandatory and symmetrical: `then` stops before `first` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub first: String,
    pub first_action: Action,
    pub then: String,
    pub then_action: Action,
}

/// A constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    Location(Location),
    Colocation(Colocation),
    Order(Order),
}

impl Constraint {
    pub fn id(&self) -> &str {
        match self {
            Self::Location(location) => &location.id,
            Self::Colocation(colocation) => &colocation.id,
            Self::Order(order) => &order.id,
        }
    }
}
