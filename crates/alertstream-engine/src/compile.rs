//! Type-checks a parsed condition and compiles it into a tree that evaluates without lookups by name.
//!
//! Metric names are resolved once, here, to slots in a [`MetricTable`] shared by every rule of a rule set, so a
//! reading's value for each metric is looked up once per reading, not once per rule.

use std::{ops::Range, sync::Arc, time::Duration};

use super::{
    ConditionError,
    parser::{BinaryOp, Expr, Node, UnaryOp, parse},
    window::{ANOMALY_WARM_UP, Aggregate, LIKELIHOOD_HISTORY, LIKELIHOOD_WARM_UP, MAX_WINDOW_READINGS, Span, WindowFn},
};

/// The metric names a rule set reads, each given a slot number once.
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricTable {
    names: Vec<String>,
}

impl MetricTable {
    fn slot(&mut self, name: &str) -> usize {
        if let Some(slot) = self.names.iter().position(|n| n == name) {
            return slot;
        }
        self.names.push(name.to_owned());
        self.names.len() - 1
    }

    /// The metric names, indexed by slot.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }
}

/// One comparison of a condition, as an alert's explanation names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TermSpec {
    /// The left side as written: `zscore(value, 1000)`.
    pub(crate) expression: Arc<str>,
    /// `>`, `<=`, …
    pub(crate) operator: &'static str,
}

/// A compiled boolean condition and the slots it reads.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub(crate) root: BoolExpr,
    /// Its comparisons in the order they are written; each evaluation records their sides' values by this index.
    pub(crate) terms: Vec<TermSpec>,
    /// Every slot the condition reads, without repeats: a reading that lacks one skips the rule.
    pub(crate) slots: Vec<usize>,
    /// Whether it calls a window function, so needs a sensor's history (stateless evaluation skips it).
    pub(crate) stateful: bool,
}

/// A compiled expression with a boolean value.
#[derive(Debug, Clone)]
pub(crate) enum BoolExpr {
    /// A comparison, and its index in the condition's terms.
    Compare(CompareOp, NumExpr, NumExpr, usize),
    /// A metric compared with a constant (`temperature < 10`, the commonest comparison), and its index in the
    /// condition's terms: [`BoolExpr::Compare`] with its operands' kinds known when compiled, so evaluation reads one
    /// slot and matches on nothing but the operator.
    CompareMetric {
        op: CompareOp,
        slot: usize,
        threshold: f64,
        term: usize,
    },
    And(Box<BoolExpr>, Box<BoolExpr>),
    Or(Box<BoolExpr>, Box<BoolExpr>),
    Not(Box<BoolExpr>),
}

/// A compiled expression with a numeric value.
#[derive(Debug, Clone)]
pub(crate) enum NumExpr {
    Const(f64),
    Metric(usize),
    Neg(Box<NumExpr>),
    Arith(ArithOp, Box<NumExpr>, Box<NumExpr>),
    /// `abs(x)`.
    Abs(Box<NumExpr>),
    /// `greatest(a, b, ...)`: the largest of its arguments (NaN if any is NaN).
    Greatest(Vec<NumExpr>),
    /// `least(a, b, ...)`: the smallest.
    Least(Vec<NumExpr>),
    /// A window function call: its state is the rule's window number `slot` for the sensor.
    Window {
        slot: usize,
        function: WindowFn,
        arg: Box<NumExpr>,
    },
}

/// The comparison operators.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CompareOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

/// The arithmetic operators.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Parses and compiles `src`, registering the metrics it reads in `metrics` and the window functions it calls in
/// `windows` (the rule's list: a rule's condition and resolve condition share it).
pub(crate) fn compile(
    src: &str,
    metrics: &mut MetricTable,
    windows: &mut Vec<WindowFn>,
) -> Result<Condition, ConditionError> {
    let ast = parse(src)?;
    let windows_before = windows.len();
    let mut compiler = Compiler { src, metrics, slots: Vec::new(), windows, terms: Vec::new() };
    let root = match compiler.typed(&ast)? {
        Typed::Bool(root) => root,
        Typed::Num(_) => {
            return Err(error(
                ast.span,
                "a condition must be true or false: compare this value, as in `temperature > 30`",
            ));
        }
    };
    let stateful = compiler.windows.len() > windows_before;
    let (slots, terms) = (compiler.slots, compiler.terms);
    Ok(Condition { root, terms, slots, stateful })
}

enum Typed {
    Bool(BoolExpr),
    Num(NumExpr),
}

struct Compiler<'a> {
    /// The condition's text, for its comparisons' left sides as written.
    src: &'a str,
    metrics: &'a mut MetricTable,
    slots: Vec<usize>,
    windows: &'a mut Vec<WindowFn>,
    terms: Vec<TermSpec>,
}

impl Compiler<'_> {
    fn typed(&mut self, node: &Node) -> Result<Typed, ConditionError> {
        Ok(match &node.expr {
            Expr::Number(n) => Typed::Num(NumExpr::Const(*n)),
            Expr::Duration(_) => {
                return Err(error(
                    node.span.clone(),
                    "a duration is only a window's length, as in `avg(temperature, 30s)`",
                ));
            }
            Expr::Call(name, args) if SCALAR_FUNCTIONS.contains(&name.as_str()) => {
                Typed::Num(self.scalar_call(name, args, node.span.clone())?)
            }
            Expr::Call(name, args) => {
                let (function, arg) = self.call(name, args, node.span.clone())?;
                self.windows.push(function);
                Typed::Num(NumExpr::Window { slot: self.windows.len() - 1, function, arg: Box::new(arg) })
            }
            Expr::Metric(name) => {
                let slot = self.metrics.slot(name);
                if !self.slots.contains(&slot) {
                    self.slots.push(slot);
                }
                Typed::Num(NumExpr::Metric(slot))
            }
            Expr::Unary(UnaryOp::Neg, operand) => Typed::Num(match self.number(operand, "`-`")? {
                // A negative constant is a constant (exact in IEEE 754), so `temperature < -10` compares a metric
                // with a constant too.
                NumExpr::Const(n) => NumExpr::Const(-n),
                operand => NumExpr::Neg(Box::new(operand)),
            }),
            Expr::Unary(UnaryOp::Not, operand) => Typed::Bool(BoolExpr::Not(Box::new(self.boolean(operand, "`not`")?))),
            Expr::Binary(op, lhs, rhs) if op.is_logical() => {
                let what = format!("`{}`", op.symbol());
                let (lhs, rhs) = (Box::new(self.boolean(lhs, &what)?), Box::new(self.boolean(rhs, &what)?));
                Typed::Bool(if *op == BinaryOp::And { BoolExpr::And(lhs, rhs) } else { BoolExpr::Or(lhs, rhs) })
            }
            Expr::Binary(op, lhs_node, rhs) => {
                let what = format!("`{}`", op.symbol());
                let (lhs, rhs) = (self.number(lhs_node, &what)?, self.number(rhs, &what)?);
                match compare_op(*op) {
                    Some(cmp) => {
                        let expression = self.src.get(lhs_node.span.clone()).unwrap_or_default().trim();
                        self.terms.push(TermSpec { expression: Arc::from(expression), operator: op.symbol() });
                        let term = self.terms.len() - 1;
                        Typed::Bool(match (lhs, rhs) {
                            (NumExpr::Metric(slot), NumExpr::Const(threshold)) => {
                                BoolExpr::CompareMetric { op: cmp, slot, threshold, term }
                            }
                            (lhs, rhs) => BoolExpr::Compare(cmp, lhs, rhs, term),
                        })
                    }
                    None => Typed::Num(NumExpr::Arith(arith_op(*op), Box::new(lhs), Box::new(rhs))),
                }
            }
        })
    }

    /// Checks a scalar function call (`abs`, `greatest`, `least`) and compiles it with its arguments.
    fn scalar_call(&mut self, name: &str, args: &[Node], span: Range<usize>) -> Result<NumExpr, ConditionError> {
        let what = format!("`{name}`");
        let mut compiled = Vec::with_capacity(args.len());
        for arg in args {
            compiled.push(self.number(arg, &what)?);
        }
        match (name, compiled.len()) {
            ("abs", 1) => Ok(NumExpr::Abs(Box::new(compiled.remove(0)))),
            ("greatest", 2..) => Ok(NumExpr::Greatest(compiled)),
            ("least", 2..) => Ok(NumExpr::Least(compiled)),
            ("abs", _) => Err(error(span, "`abs` takes one number: (x)")),
            _ => Err(error(
                span,
                format!("`{name}` takes two numbers or more: ({name}(a, b, ...)); over a window, use `max` or `min`"),
            )),
        }
    }

    /// Checks a window function call and compiles its first argument.
    fn call(&mut self, name: &str, args: &[Node], span: Range<usize>) -> Result<(WindowFn, NumExpr), ConditionError> {
        let usage = match name {
            "avg" | "min" | "max" | "sum" | "count" | "stddev" => {
                "(x, N) over the last N readings or (x, 30s) over a duration"
            }
            "delta" => "(x)",
            "rate" => "(x, 30s)",
            "ewma" => "(x, alpha) with 0 < alpha <= 1",
            "zscore" => "(x) over all history or (x, N) over the last N readings",
            "robust_zscore" => "(x, N)",
            "lag" => "(x, N), the value N readings ago, or (x, 1d), the latest value at or before 1d ago",
            "novelty" => "(x)",
            "likelihood" | "anomaly" => "(x), or (x, N) to fit its distribution to the last N readings",
            _ => {
                return Err(error(
                    span,
                    format!(
                        "unknown function `{name}`; the functions are avg, min, max, sum, count, stddev, delta, rate, \
                         ewma, zscore, robust_zscore, lag, anomaly, novelty, likelihood, abs, greatest and least"
                    ),
                ));
            }
        };
        let bad = |at: Range<usize>| error(at, format!("`{name}` takes {usage}"));
        let Some(first) = args.first() else { return Err(bad(span)) };
        let arg = self.number(first, &format!("`{name}`"))?;
        let second = args.get(1);
        if args.len() > 2 {
            return Err(bad(args[2].span.clone()));
        }
        let aggregate = match name {
            "avg" => Some(Aggregate::Avg),
            "min" => Some(Aggregate::Min),
            "max" => Some(Aggregate::Max),
            "sum" => Some(Aggregate::Sum),
            "count" => Some(Aggregate::Count),
            "stddev" => Some(Aggregate::Stddev),
            _ => None,
        };
        let at = second.map_or(span.clone(), |n| n.span.clone());
        let function = match (name, second.map(|n| &n.expr), aggregate) {
            (_, Some(Expr::Duration(d)), Some(aggregate)) => {
                WindowFn::Aggregate(aggregate, Span::Time(positive(*d, at)?))
            }
            // A standard deviation needs two readings: a window of one would never have a value.
            (_, Some(Expr::Number(n)), Some(aggregate)) => {
                let min = if aggregate == Aggregate::Stddev { 2 } else { 1 };
                WindowFn::Aggregate(aggregate, Span::Readings(count(*n, min, at)?))
            }
            ("delta", None, _) => WindowFn::Delta,
            ("rate", Some(Expr::Duration(d)), _) => WindowFn::Rate(positive(*d, at)?),
            ("ewma", Some(Expr::Number(alpha)), _) if *alpha > 0.0 && *alpha <= 1.0 => WindowFn::Ewma(*alpha),
            ("zscore", None, _) => WindowFn::ZScore(None),
            ("zscore", Some(Expr::Number(n)), _) => WindowFn::ZScore(Some(count(*n, ANOMALY_WARM_UP, at)?)),
            ("robust_zscore", Some(Expr::Number(n)), _) => WindowFn::RobustZScore(count(*n, ANOMALY_WARM_UP, at)?),
            ("lag", Some(Expr::Number(n)), _) => WindowFn::Lag(Span::Readings(count(*n, 1, at)?)),
            ("lag", Some(Expr::Duration(d)), _) => WindowFn::Lag(Span::Time(positive(*d, at)?)),
            ("novelty", None, _) => WindowFn::Novelty,
            ("likelihood", None, _) => WindowFn::Likelihood(LIKELIHOOD_HISTORY),
            ("likelihood", Some(Expr::Number(n)), _) => WindowFn::Likelihood(count(*n, LIKELIHOOD_WARM_UP, at)?),
            ("anomaly", None, _) => WindowFn::Anomaly(LIKELIHOOD_HISTORY),
            ("anomaly", Some(Expr::Number(n)), _) => WindowFn::Anomaly(count(*n, LIKELIHOOD_WARM_UP, at)?),
            _ => return Err(bad(at)),
        };
        Ok((function, arg))
    }

    fn number(&mut self, node: &Node, operator: &str) -> Result<NumExpr, ConditionError> {
        match self.typed(node)? {
            Typed::Num(n) => Ok(n),
            Typed::Bool(_) => {
                Err(error(node.span.clone(), format!("{operator} needs a number here, not a true/false condition")))
            }
        }
    }

    fn boolean(&mut self, node: &Node, operator: &str) -> Result<BoolExpr, ConditionError> {
        match self.typed(node)? {
            Typed::Bool(b) => Ok(b),
            Typed::Num(_) => Err(error(
                node.span.clone(),
                format!("{operator} needs a true/false condition here, not a number; compare it, as in `x > 0`"),
            )),
        }
    }
}

/// The functions of the current reading alone, which keep no state.
const SCALAR_FUNCTIONS: [&str; 3] = ["abs", "greatest", "least"];

/// A window length in readings: a whole number from `min` to [`MAX_WINDOW_READINGS`].
fn count(n: f64, min: usize, span: Range<usize>) -> Result<usize, ConditionError> {
    if n.fract() != 0.0 || n < min as f64 || n > MAX_WINDOW_READINGS as f64 {
        return Err(error(
            span,
            format!("a window of readings is a whole number from {min} to {MAX_WINDOW_READINGS}, not {n}"),
        ));
    }
    Ok(n as usize)
}

/// A window length in time: more than zero.
fn positive(d: Duration, span: Range<usize>) -> Result<Duration, ConditionError> {
    if d.is_zero() {
        return Err(error(span, "a window's duration must be more than 0"));
    }
    Ok(d)
}

fn compare_op(op: BinaryOp) -> Option<CompareOp> {
    Some(match op {
        BinaryOp::Lt => CompareOp::Lt,
        BinaryOp::Le => CompareOp::Le,
        BinaryOp::Gt => CompareOp::Gt,
        BinaryOp::Ge => CompareOp::Ge,
        BinaryOp::Eq => CompareOp::Eq,
        BinaryOp::Ne => CompareOp::Ne,
        _ => return None,
    })
}

fn arith_op(op: BinaryOp) -> ArithOp {
    match op {
        BinaryOp::Add => ArithOp::Add,
        BinaryOp::Sub => ArithOp::Sub,
        BinaryOp::Mul => ArithOp::Mul,
        _ => ArithOp::Div,
    }
}

fn error(span: Range<usize>, message: impl Into<String>) -> ConditionError {
    ConditionError { span, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_compared_with_a_constant_of_either_sign_is_its_own_node() {
        let mut metrics = MetricTable::default();
        for (src, expected) in [("t < 10", 10.0), ("t >= -2.5", -2.5), ("t > --3", 3.0)] {
            let condition = compile(src, &mut metrics, &mut Vec::new()).unwrap();
            assert!(
                matches!(condition.root, BoolExpr::CompareMetric { slot: 0, threshold, term: 0, .. } if threshold == expected),
                "{src}: {:?}",
                condition.root
            );
        }
        // Anything else stays a general comparison: a constant on the left, or an expression on either side.
        for src in ["10 > t", "t + 1 > 2", "t > -t"] {
            let condition = compile(src, &mut metrics, &mut Vec::new()).unwrap();
            assert!(matches!(condition.root, BoolExpr::Compare(..)), "{src}: {:?}", condition.root);
        }
    }

    #[test]
    fn metrics_get_one_slot_each_across_conditions() {
        let mut metrics = MetricTable::default();
        let first = compile("temperature < 10 or temperature > 90", &mut metrics, &mut Vec::new()).unwrap();
        let second = compile("pH > 5.5 and temperature > 0", &mut metrics, &mut Vec::new()).unwrap();
        assert_eq!(metrics.names(), ["temperature", "pH"]);
        assert_eq!(first.slots, [0]);
        assert_eq!(second.slots, [1, 0]);
    }

    #[test]
    fn window_calls_get_a_slot_each_and_make_the_condition_stateful() {
        let mut windows = Vec::new();
        let plain = compile("a > 1", &mut MetricTable::default(), &mut windows).unwrap();
        let c = compile("avg(a, 10) > 1 and delta(b) < 0 or zscore(a) > 3", &mut MetricTable::default(), &mut windows)
            .unwrap();
        assert!(!plain.stateful && c.stateful);
        assert_eq!(
            windows,
            [WindowFn::Aggregate(Aggregate::Avg, Span::Readings(10)), WindowFn::Delta, WindowFn::ZScore(None)]
        );
    }

    #[test]
    fn type_errors_point_at_the_wrong_operand() {
        for (src, span, message) in [
            (
                "temperature + 1",
                0..15,
                "a condition must be true or false: compare this value, as in `temperature > 30`",
            ),
            ("a > 1 and b", 10..11, "`and` needs a true/false condition here, not a number; compare it, as in `x > 0`"),
            ("not a", 4..5, "`not` needs a true/false condition here, not a number; compare it, as in `x > 0`"),
            ("(a > 1) + 2 > 0", 0..7, "`+` needs a number here, not a true/false condition"),
            ("-(a > 1) or b > 0", 1..8, "`-` needs a number here, not a true/false condition"),
            (
                "foo(a) > 1",
                0..6,
                "unknown function `foo`; the functions are avg, min, max, sum, count, stddev, delta, rate, ewma, zscore, robust_zscore, lag, anomaly, novelty, likelihood, abs, greatest and least",
            ),
            ("avg(a) > 1", 0..6, "`avg` takes (x, N) over the last N readings or (x, 30s) over a duration"),
            ("avg(a, 0) > 1", 7..8, "a window of readings is a whole number from 1 to 100000, not 0"),
            ("stddev(a, 1) > 1", 10..11, "a window of readings is a whole number from 2 to 100000, not 1"),
            ("avg(a, 2.5) > 1", 7..10, "a window of readings is a whole number from 1 to 100000, not 2.5"),
            ("zscore(a, 5) > 3", 10..11, "a window of readings is a whole number from 10 to 100000, not 5"),
            ("rate(a, 10) > 1", 8..10, "`rate` takes (x, 30s)"),
            ("rate(a, 0s) > 1", 8..10, "a window's duration must be more than 0"),
            ("ewma(a, 1.5) > 1", 8..11, "`ewma` takes (x, alpha) with 0 < alpha <= 1"),
            ("delta(a, 3) > 1", 9..10, "`delta` takes (x)"),
            ("avg(a > 1, 3) > 1", 4..9, "`avg` needs a number here, not a true/false condition"),
            ("a > 30s", 4..7, "a duration is only a window's length, as in `avg(temperature, 30s)`"),
            ("max(a, 3, 4) > 1", 10..11, "`max` takes (x, N) over the last N readings or (x, 30s) over a duration"),
            ("abs(a, b) > 1", 0..9, "`abs` takes one number: (x)"),
            (
                "greatest(a) > 1",
                0..11,
                "`greatest` takes two numbers or more: (greatest(a, b, ...)); over a window, use `max` or `min`",
            ),
            ("least(a, b > 1) > 1", 9..14, "`least` needs a number here, not a true/false condition"),
            (
                "lag(a) > 1",
                0..6,
                "`lag` takes (x, N), the value N readings ago, or (x, 1d), the latest value at or before 1d ago",
            ),
            ("lag(a, 0) > 1", 7..8, "a window of readings is a whole number from 1 to 100000, not 0"),
        ] {
            let err = compile(src, &mut MetricTable::default(), &mut Vec::new()).unwrap_err();
            assert_eq!((err.span, err.message.as_str()), (span, message), "{src}");
        }
    }
}
