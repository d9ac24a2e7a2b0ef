//! Evaluates a compiled condition against a reading's metric values, looked up once per reading into slots.
//!
//! Arithmetic and comparisons are IEEE 754: `x / 0` is infinite and every comparison with NaN but `!=` is false.

use super::compile::{ArithOp, BoolExpr, CompareOp, Condition, NumExpr};

impl Condition {
    /// Whether the condition holds, or `None` when the reading lacks a metric it reads.
    ///
    /// `values` holds the reading's value for each slot of the rule set's metric table.
    pub(crate) fn evaluate(&self, values: &[Option<f64>]) -> Option<bool> {
        if self.slots.iter().any(|&slot| values[slot].is_none()) {
            return None;
        }
        Some(self.root.evaluate(values))
    }
}

impl BoolExpr {
    fn evaluate(&self, values: &[Option<f64>]) -> bool {
        match self {
            BoolExpr::Compare(op, lhs, rhs) => {
                let (lhs, rhs) = (lhs.evaluate(values), rhs.evaluate(values));
                match op {
                    CompareOp::Lt => lhs < rhs,
                    CompareOp::Le => lhs <= rhs,
                    CompareOp::Gt => lhs > rhs,
                    CompareOp::Ge => lhs >= rhs,
                    CompareOp::Eq => lhs == rhs,
                    CompareOp::Ne => lhs != rhs,
                }
            }
            BoolExpr::And(lhs, rhs) => lhs.evaluate(values) && rhs.evaluate(values),
            BoolExpr::Or(lhs, rhs) => lhs.evaluate(values) || rhs.evaluate(values),
            BoolExpr::Not(operand) => !operand.evaluate(values),
        }
    }
}

impl NumExpr {
    fn evaluate(&self, values: &[Option<f64>]) -> f64 {
        match self {
            NumExpr::Const(n) => *n,
            // Condition::evaluate checked every slot first; NaN keeps this total without a panic path.
            NumExpr::Metric(slot) => values[*slot].unwrap_or(f64::NAN),
            NumExpr::Neg(operand) => -operand.evaluate(values),
            NumExpr::Arith(op, lhs, rhs) => {
                let (lhs, rhs) = (lhs.evaluate(values), rhs.evaluate(values));
                match op {
                    ArithOp::Add => lhs + rhs,
                    ArithOp::Sub => lhs - rhs,
                    ArithOp::Mul => lhs * rhs,
                    ArithOp::Div => lhs / rhs,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::{MetricTable, compile};

    /// Compiles `src` over metrics `a` and `b` (in that slot order) and evaluates it.
    fn check(src: &str, a: Option<f64>, b: Option<f64>) -> Option<bool> {
        let mut metrics = MetricTable::default();
        compile("a > 0 and b > 0", &mut metrics).unwrap();
        compile(src, &mut metrics).unwrap().evaluate(&[a, b])
    }

    #[test]
    fn evaluates_like_ieee_754() {
        for (src, a, b, expected) in [
            ("a < 10", Some(8.0), None, Some(true)),
            ("a < 10", Some(12.0), None, Some(false)),
            ("a < 10", None, Some(1.0), None),
            ("a < -10", Some(-11.0), None, Some(true)),
            ("a + b * 2 == 7", Some(1.0), Some(3.0), Some(true)),
            ("(a + b) * 2 == 8", Some(1.0), Some(3.0), Some(true)),
            ("a - b - 1 == -3", Some(1.0), Some(3.0), Some(true)),
            ("a / b > 1e300", Some(1.0), Some(0.0), Some(true)),
            ("-a / b < -1e300", Some(1.0), Some(0.0), Some(true)),
            ("a / b == a / b", Some(0.0), Some(0.0), Some(false)),
            ("a / b != a / b", Some(0.0), Some(0.0), Some(true)),
            ("a / b < 1 or a / b >= 1", Some(0.0), Some(0.0), Some(false)),
            ("a > 1 and b > 1", Some(2.0), Some(0.0), Some(false)),
            ("a > 1 or b > 1", Some(2.0), Some(0.0), Some(true)),
            ("not a > 1", Some(2.0), None, Some(false)),
            ("a > 1 or b > 1", Some(2.0), None, None),
            ("1 < 2", None, None, Some(true)),
        ] {
            assert_eq!(check(src, a, b), expected, "{src} with a={a:?} b={b:?}");
        }
    }
}
