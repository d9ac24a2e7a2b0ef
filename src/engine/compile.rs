//! Type-checks a parsed condition and compiles it into a tree that evaluates without lookups by name.
//!
//! Metric names are resolved once, here, to slots in a [`MetricTable`] shared by every rule of a rule set, so a
//! reading's value for each metric is looked up once per reading, not once per rule.

use std::ops::Range;

use super::{
    ConditionError,
    parser::{BinaryOp, Expr, Node, UnaryOp, parse},
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

/// A compiled boolean condition and the slots it reads.
#[derive(Debug, Clone)]
pub(crate) struct Condition {
    pub(crate) root: BoolExpr,
    /// Every slot the condition reads, without repeats: a reading that lacks one skips the rule.
    pub(crate) slots: Vec<usize>,
}

/// A compiled expression with a boolean value.
#[derive(Debug, Clone)]
pub(crate) enum BoolExpr {
    Compare(CompareOp, NumExpr, NumExpr),
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

/// Parses and compiles `src`, registering the metrics it reads in `metrics`.
pub(crate) fn compile(src: &str, metrics: &mut MetricTable) -> Result<Condition, ConditionError> {
    let ast = parse(src)?;
    let mut compiler = Compiler { metrics, slots: Vec::new() };
    let root = match compiler.typed(&ast)? {
        Typed::Bool(root) => root,
        Typed::Num(_) => {
            return Err(error(
                ast.span,
                "a condition must be true or false: compare this value, as in `temperature > 30`",
            ));
        }
    };
    let slots = compiler.slots;
    Ok(Condition { root, slots })
}

enum Typed {
    Bool(BoolExpr),
    Num(NumExpr),
}

struct Compiler<'a> {
    metrics: &'a mut MetricTable,
    slots: Vec<usize>,
}

impl Compiler<'_> {
    fn typed(&mut self, node: &Node) -> Result<Typed, ConditionError> {
        Ok(match &node.expr {
            Expr::Number(n) => Typed::Num(NumExpr::Const(*n)),
            Expr::Metric(name) => {
                let slot = self.metrics.slot(name);
                if !self.slots.contains(&slot) {
                    self.slots.push(slot);
                }
                Typed::Num(NumExpr::Metric(slot))
            }
            Expr::Unary(UnaryOp::Neg, operand) => Typed::Num(NumExpr::Neg(Box::new(self.number(operand, "`-`")?))),
            Expr::Unary(UnaryOp::Not, operand) => Typed::Bool(BoolExpr::Not(Box::new(self.boolean(operand, "`not`")?))),
            Expr::Binary(op, lhs, rhs) if op.is_logical() => {
                let what = format!("`{}`", op.symbol());
                let (lhs, rhs) = (Box::new(self.boolean(lhs, &what)?), Box::new(self.boolean(rhs, &what)?));
                Typed::Bool(if *op == BinaryOp::And { BoolExpr::And(lhs, rhs) } else { BoolExpr::Or(lhs, rhs) })
            }
            Expr::Binary(op, lhs, rhs) => {
                let what = format!("`{}`", op.symbol());
                let (lhs, rhs) = (self.number(lhs, &what)?, self.number(rhs, &what)?);
                match compare_op(*op) {
                    Some(cmp) => Typed::Bool(BoolExpr::Compare(cmp, lhs, rhs)),
                    None => Typed::Num(NumExpr::Arith(arith_op(*op), Box::new(lhs), Box::new(rhs))),
                }
            }
        })
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
    fn metrics_get_one_slot_each_across_conditions() {
        let mut metrics = MetricTable::default();
        let first = compile("temperature < 10 or temperature > 90", &mut metrics).unwrap();
        let second = compile("pH > 5.5 and temperature > 0", &mut metrics).unwrap();
        assert_eq!(metrics.names(), ["temperature", "pH"]);
        assert_eq!(first.slots, [0]);
        assert_eq!(second.slots, [1, 0]);
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
        ] {
            let err = compile(src, &mut MetricTable::default()).unwrap_err();
            assert_eq!((err.span, err.message.as_str()), (span, message), "{src}");
        }
    }
}
