//! Evaluates a compiled condition against a reading's metric values (looked up once per reading into slots) and,
//! for window functions, the sensor's window states.
//!
//! Arithmetic and comparisons are IEEE 754: `x / 0` is infinite and every comparison with NaN but `!=` is false.
//! Evaluation never short-circuits: every window function sees every reading the rule is applied to, whatever the
//! rest of the condition says.

use std::time::SystemTime;

use super::{
    compile::{ArithOp, BoolExpr, CompareOp, Condition, NumExpr},
    window::Window,
};

/// What a condition is evaluated against.
pub(crate) struct Inputs<'a> {
    /// The reading's value for each metric slot of the rule set.
    pub(crate) values: &'a [Option<f64>],
    /// The reading's time.
    pub(crate) time: SystemTime,
    /// The sensor's latest reading time, at or after `time`.
    pub(crate) latest: SystemTime,
}

impl Condition {
    /// Whether every metric the condition reads is in the reading.
    pub(crate) fn has_inputs(&self, values: &[Option<f64>]) -> bool {
        self.slots.iter().all(|&slot| values[slot].is_some())
    }

    /// Whether the condition holds, updating the rule's `windows` and recording each comparison's two sides in
    /// `terms` (one entry per [`Condition::terms`], `None` where a side has no value); `None` when a window function
    /// has no value yet, or when a metric is missing (every operator passes a missing value on). A caller whose
    /// condition has windows checks [`Condition::has_inputs`] first, so that no window learns from a reading the rule
    /// skips.
    pub(crate) fn evaluate(
        &self,
        inputs: &Inputs<'_>,
        windows: &mut [Window],
        terms: &mut [TermValue],
    ) -> Option<bool> {
        self.root.evaluate(inputs, windows, terms)
    }
}

/// The two sides of one comparison at a reading, when both have a value.
pub(crate) type TermValue = Option<(f64, f64)>;

impl BoolExpr {
    fn evaluate(&self, inputs: &Inputs<'_>, windows: &mut [Window], terms: &mut [TermValue]) -> Option<bool> {
        match self {
            BoolExpr::Compare(op, lhs, rhs, term) => {
                let (lhs, rhs) = (lhs.value(inputs, windows), rhs.value(inputs, windows));
                let sides = lhs.zip(rhs);
                if let Some(slot) = terms.get_mut(*term) {
                    *slot = sides;
                }
                let (lhs, rhs) = sides?;
                Some(op.holds(lhs, rhs))
            }
            BoolExpr::CompareMetric { op, slot, threshold, term } => {
                let value = inputs.values[*slot];
                if let Some(side) = terms.get_mut(*term) {
                    *side = value.map(|value| (value, *threshold));
                }
                Some(op.holds(value?, *threshold))
            }
            BoolExpr::And(lhs, rhs) => {
                let (lhs, rhs) = (lhs.evaluate(inputs, windows, terms), rhs.evaluate(inputs, windows, terms));
                Some(lhs? & rhs?)
            }
            BoolExpr::Or(lhs, rhs) => {
                let (lhs, rhs) = (lhs.evaluate(inputs, windows, terms), rhs.evaluate(inputs, windows, terms));
                Some(lhs? | rhs?)
            }
            BoolExpr::Not(operand) => operand.evaluate(inputs, windows, terms).map(|b| !b),
        }
    }
}

impl CompareOp {
    /// Whether `lhs op rhs`.
    #[inline(always)]
    fn holds(self, lhs: f64, rhs: f64) -> bool {
        match self {
            CompareOp::Lt => lhs < rhs,
            CompareOp::Le => lhs <= rhs,
            CompareOp::Gt => lhs > rhs,
            CompareOp::Ge => lhs >= rhs,
            CompareOp::Eq => lhs == rhs,
            CompareOp::Ne => lhs != rhs,
        }
    }
}

impl NumExpr {
    /// The expression's value: a constant or a metric (most operands) inline, anything else through
    /// [`NumExpr::evaluate`]. Saves a call per operand in conditions such as `temperature < 10`.
    #[inline(always)]
    fn value(&self, inputs: &Inputs<'_>, windows: &mut [Window]) -> Option<f64> {
        match self {
            NumExpr::Const(n) => Some(*n),
            NumExpr::Metric(slot) => inputs.values[*slot],
            _ => self.evaluate(inputs, windows),
        }
    }

    fn evaluate(&self, inputs: &Inputs<'_>, windows: &mut [Window]) -> Option<f64> {
        match self {
            NumExpr::Const(n) => Some(*n),
            NumExpr::Metric(slot) => inputs.values[*slot],
            NumExpr::Neg(operand) => operand.evaluate(inputs, windows).map(|v| -v),
            NumExpr::Arith(op, lhs, rhs) => {
                let (lhs, rhs) = (lhs.value(inputs, windows), rhs.value(inputs, windows));
                let (lhs, rhs) = (lhs?, rhs?);
                Some(match op {
                    ArithOp::Add => lhs + rhs,
                    ArithOp::Sub => lhs - rhs,
                    ArithOp::Mul => lhs * rhs,
                    ArithOp::Div => lhs / rhs,
                })
            }
            NumExpr::Abs(operand) => operand.value(inputs, windows).map(f64::abs),
            NumExpr::Greatest(operands) => extreme(operands, inputs, windows, f64::max),
            NumExpr::Least(operands) => extreme(operands, inputs, windows, f64::min),
            NumExpr::Window { slot, function, arg } => {
                let value = arg.value(inputs, windows)?;
                windows[*slot].update(function, inputs.time, inputs.latest, value)
            }
        }
    }
}

/// The largest (or, with `f64::min`, smallest) of `operands`: every operand is evaluated (so their windows learn
/// from the reading), then no value if any has none, NaN if any is NaN (as a comparison with NaN is false).
fn extreme(
    operands: &[NumExpr],
    inputs: &Inputs<'_>,
    windows: &mut [Window],
    pick: fn(f64, f64) -> f64,
) -> Option<f64> {
    let (mut missing, mut nan, mut best) = (false, false, None);
    for operand in operands {
        match operand.value(inputs, windows) {
            None => missing = true,
            Some(v) if v.is_nan() => nan = true,
            Some(v) => best = Some(best.map_or(v, |b| pick(b, v))),
        }
    }
    if missing {
        None
    } else if nan {
        Some(f64::NAN)
    } else {
        best
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{super::compile::MetricTable, *};
    use crate::compile::compile;

    /// Compiles `src` over metrics `a` and `b` (in that slot order) and evaluates it once, statelessly.
    fn check(src: &str, a: Option<f64>, b: Option<f64>) -> Option<bool> {
        let mut metrics = MetricTable::default();
        compile("a > 0 and b > 0", &mut metrics, &mut Vec::new()).unwrap();
        let condition = compile(src, &mut metrics, &mut Vec::new()).unwrap();
        let values = [a, b];
        if !condition.has_inputs(&values) {
            return None;
        }
        let inputs = Inputs { values: &values, time: SystemTime::UNIX_EPOCH, latest: SystemTime::UNIX_EPOCH };
        condition.evaluate(&inputs, &mut [], &mut [None; 8])
    }

    #[test]
    fn abs_greatest_and_least_are_scalar_and_have_no_value_when_an_argument_has_none() {
        assert_eq!(check("abs(a) > 3", Some(-4.0), None), Some(true));
        assert_eq!(check("abs(a - b) < 1", Some(2.0), Some(2.5)), Some(true));
        assert_eq!(check("greatest(a, b, 1) == 7", Some(7.0), Some(-2.0)), Some(true));
        assert_eq!(check("least(a, b, 1) == -2", Some(7.0), Some(-2.0)), Some(true));
        assert_eq!(check("greatest(a, b) > 0", Some(1.0), None), None);
        // NaN in, NaN out: every comparison with it is false.
        assert_eq!(check("greatest(a, b / b) > 0", Some(1.0), Some(0.0)), Some(false));
        assert_eq!(check("least(a, b / b) <= 1", Some(1.0), Some(0.0)), Some(false));
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

    #[test]
    fn windows_learn_from_every_reading_even_when_the_rest_decides() {
        let mut metrics = MetricTable::default();
        let mut functions = Vec::new();
        let condition = compile("a > 100 and avg(a, 3) > 5", &mut metrics, &mut functions).unwrap();
        let mut windows: Vec<Window> = functions.iter().map(|f| f.instantiate()).collect();
        let mut results = Vec::new();
        for (i, a) in [3.0, 6.0, 9.0, 200.0].into_iter().enumerate() {
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(i as u64);
            let values = [Some(a)];
            results.push(condition.evaluate(&Inputs { values: &values, time, latest: time }, &mut windows, &mut []));
        }
        // The avg window saw every reading: over (6, 9, 200) it is 71.7 when `a > 100` first holds.
        assert_eq!(results, [Some(false), Some(false), Some(false), Some(true)]);
        let values = [Some(1.0)];
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(9);
        let delta = compile("delta(a) > 0", &mut metrics, &mut functions).unwrap();
        let mut windows: Vec<Window> = functions.iter().map(|f| f.instantiate()).collect();
        assert_eq!(delta.evaluate(&Inputs { values: &values, time, latest: time }, &mut windows, &mut []), None);
    }
}
