//! A Pratt parser from tokens to an AST with byte spans (after matklad's minipratt).
//!
//! Binding powers, loosest first: `or`, `and`, prefix `not`, comparisons (not chained), `+ -`, `* /`, unary `-`.

use std::{fmt, ops::Range, time::Duration};

use super::{
    ConditionError,
    lexer::{Token, TokenKind, tokenize},
};

/// A parsed condition node and the source it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) expr: Expr,
    pub(crate) span: Range<usize>,
}

/// The shapes an expression can take.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Number(f64),
    /// A length of time, only meaningful as a window function's argument.
    Duration(Duration),
    Metric(String),
    /// A function call: `avg(temperature, 10)`.
    Call(String, Vec<Node>),
    Unary(UnaryOp, Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Neg,
    Not,
}

/// Infix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinaryOp {
    pub(crate) fn is_comparison(self) -> bool {
        matches!(self, Self::Lt | Self::Le | Self::Gt | Self::Ge | Self::Eq | Self::Ne)
    }

    pub(crate) fn is_logical(self) -> bool {
        matches!(self, Self::And | Self::Or)
    }

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Add => "+",
            Self::Sub => "-",
            Self::Mul => "*",
            Self::Div => "/",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::And => "and",
            Self::Or => "or",
        }
    }

    fn from_token(kind: &TokenKind) -> Option<Self> {
        Some(match kind {
            TokenKind::Plus => Self::Add,
            TokenKind::Minus => Self::Sub,
            TokenKind::Star => Self::Mul,
            TokenKind::Slash => Self::Div,
            TokenKind::Lt => Self::Lt,
            TokenKind::Le => Self::Le,
            TokenKind::Gt => Self::Gt,
            TokenKind::Ge => Self::Ge,
            TokenKind::EqEq => Self::Eq,
            TokenKind::Ne => Self::Ne,
            TokenKind::And => Self::And,
            TokenKind::Or => Self::Or,
            _ => return None,
        })
    }

    /// Left and right binding power: the higher, the tighter.
    fn binding_power(self) -> (u8, u8) {
        match self {
            Self::Or => (1, 2),
            Self::And => (3, 4),
            Self::Lt | Self::Le | Self::Gt | Self::Ge | Self::Eq | Self::Ne => (7, 8),
            Self::Add | Self::Sub => (9, 10),
            Self::Mul | Self::Div => (11, 12),
        }
    }
}

/// Prefix `not` takes everything down to a comparison: `not a > 1` is `not (a > 1)`.
const NOT_OPERAND_POWER: u8 = 5;
/// Unary minus binds tightest: `-a * b` is `(-a) * b`.
const NEG_OPERAND_POWER: u8 = 13;

/// Parses a condition's source into an AST.
pub(crate) fn parse(src: &str) -> Result<Node, ConditionError> {
    let tokens = tokenize(src)?;
    let mut parser = Parser { src, tokens, pos: 0 };
    let node = parser.expr(0)?;
    let next = parser.peek();
    if next.kind != TokenKind::Eof {
        return Err(ConditionError {
            span: next.span.clone(),
            message: format!("expected an operator or the end of the condition, found {}", next.kind.describe()),
        });
    }
    Ok(node)
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
        }
        token
    }

    fn expr(&mut self, min_power: u8) -> Result<Node, ConditionError> {
        let mut lhs = self.operand()?;
        while let Some(op) = BinaryOp::from_token(&self.peek().kind) {
            let (left_power, right_power) = op.binding_power();
            if left_power < min_power {
                break;
            }
            self.next();
            let rhs = self.expr(right_power)?;
            if op.is_comparison()
                && let Some(next) = BinaryOp::from_token(&self.peek().kind).filter(|n| n.is_comparison())
            {
                return Err(ConditionError {
                    span: self.peek().span.clone(),
                    message: format!(
                        "comparisons cannot be chained: `{}` follows `{}`; join them with `and`",
                        next.symbol(),
                        op.symbol()
                    ),
                });
            }
            let span = lhs.span.start..rhs.span.end;
            lhs = Node { expr: Expr::Binary(op, Box::new(lhs), Box::new(rhs)), span };
        }
        Ok(lhs)
    }

    fn operand(&mut self) -> Result<Node, ConditionError> {
        let token = self.next();
        let start = token.span.start;
        let (op, power) = match token.kind {
            TokenKind::Number(n) => return Ok(Node { expr: Expr::Number(n), span: token.span }),
            TokenKind::Duration(d) => return Ok(Node { expr: Expr::Duration(d), span: token.span }),
            // A bare name followed by `(` calls a function; a name in backticks is always a metric.
            TokenKind::Metric(name)
                if self.peek().kind == TokenKind::LParen && !self.src[token.span.clone()].starts_with('`') =>
            {
                return self.call(name, token.span);
            }
            TokenKind::Metric(name) => return Ok(Node { expr: Expr::Metric(name), span: token.span }),
            TokenKind::LParen => {
                let inner = self.expr(0)?;
                let close = self.next();
                if close.kind != TokenKind::RParen {
                    return Err(ConditionError {
                        span: close.span,
                        message: format!(
                            "expected `)` to close the `(` at offset {start}, found {}",
                            close.kind.describe()
                        ),
                    });
                }
                return Ok(Node { expr: inner.expr, span: start..close.span.end });
            }
            TokenKind::Minus => (UnaryOp::Neg, NEG_OPERAND_POWER),
            TokenKind::Not => (UnaryOp::Not, NOT_OPERAND_POWER),
            other => {
                return Err(ConditionError {
                    span: token.span,
                    message: format!("expected a number, a metric or `(`, found {}", other.describe()),
                });
            }
        };
        let operand = self.expr(power)?;
        let span = start..operand.span.end;
        Ok(Node { expr: Expr::Unary(op, Box::new(operand)), span })
    }

    /// Parses the arguments of a call whose name has been read; the next token is `(`.
    fn call(&mut self, name: String, name_span: Range<usize>) -> Result<Node, ConditionError> {
        self.next();
        let mut args = Vec::new();
        if self.peek().kind != TokenKind::RParen {
            loop {
                args.push(self.expr(0)?);
                if self.peek().kind != TokenKind::Comma {
                    break;
                }
                self.next();
            }
        }
        let close = self.next();
        if close.kind != TokenKind::RParen {
            return Err(ConditionError {
                span: close.span,
                message: format!("expected `,` or `)` in the call of `{name}`, found {}", close.kind.describe()),
            });
        }
        Ok(Node { expr: Expr::Call(name, args), span: name_span.start..close.span.end })
    }
}

/// Prints the AST as an S-expression, for tests and debugging.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.expr {
            Expr::Number(n) => write!(f, "{n}"),
            Expr::Duration(d) => write!(f, "{d:?}"),
            Expr::Metric(name) => write!(f, "{name}"),
            Expr::Call(name, args) => {
                write!(f, "({name}")?;
                for arg in args {
                    write!(f, " {arg}")?;
                }
                write!(f, ")")
            }
            Expr::Unary(UnaryOp::Neg, operand) => write!(f, "(- {operand})"),
            Expr::Unary(UnaryOp::Not, operand) => write!(f, "(not {operand})"),
            Expr::Binary(op, lhs, rhs) => write!(f, "({} {lhs} {rhs})", op.symbol()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, expected: &str) {
        let node = parse(src).unwrap_or_else(|e| panic!("{src}: {e:?}"));
        assert_eq!(node.to_string(), expected, "{src}");
    }

    fn check_error(src: &str, span: Range<usize>, message: &str) {
        let err = parse(src).unwrap_err();
        assert_eq!((err.span, err.message.as_str()), (span, message), "{src}");
    }

    #[test]
    fn precedence_and_associativity() {
        for (src, expected) in [
            ("temperature < 10", "(< temperature 10)"),
            ("temperature < -10", "(< temperature (- 10))"),
            ("a + b * c > 1", "(> (+ a (* b c)) 1)"),
            ("a - b - c > 0", "(> (- (- a b) c) 0)"),
            ("a / b / c > 0", "(> (/ (/ a b) c) 0)"),
            ("-a * b < 0", "(< (* (- a) b) 0)"),
            ("a > 1 or b > 2 and c > 3", "(or (> a 1) (and (> b 2) (> c 3)))"),
            ("a > 1 || b > 2 && c > 3", "(or (> a 1) (and (> b 2) (> c 3)))"),
            ("(a > 1 or b > 2) and c > 3", "(and (or (> a 1) (> b 2)) (> c 3))"),
            ("not a > 1 and b > 2", "(and (not (> a 1)) (> b 2))"),
            ("!(a > 1)", "(not (> a 1))"),
            ("not not a == 1", "(not (not (== a 1)))"),
            ("(a + 1) * 2 != 4", "(!= (* (+ a 1) 2) 4)"),
            ("`line-1.temp` > 3", "(> line-1.temp 3)"),
            ("pH > 5.5", "(> pH 5.5)"),
            ("x >= 1e-3", "(>= x 0.001)"),
            ("avg(temperature, 10) > 30", "(> (avg temperature 10) 30)"),
            ("avg(a - b, 30s) * 2 > rate(c, 1m)", "(> (* (avg (- a b) 30s) 2) (rate c 60s))"),
            ("zscore(x) > 3 or delta(x) < -1", "(or (> (zscore x) 3) (< (delta x) (- 1)))"),
        ] {
            check(src, expected);
        }
    }

    #[test]
    fn spans_cover_the_source_of_each_node() {
        let node = parse("(a + 1) > 2").unwrap();
        assert_eq!(node.span, 0..11);
        let Expr::Binary(_, lhs, rhs) = node.expr else { panic!("binary") };
        assert_eq!((lhs.span, rhs.span), (0..7, 10..11));
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        check_error("a < b < c", 6..7, "comparisons cannot be chained: `<` follows `<`; join them with `and`");
        check_error("a > ", 4..4, "expected a number, a metric or `(`, found end of condition");
        check_error("(a > 1", 6..6, "expected `)` to close the `(` at offset 0, found end of condition");
        check_error("a > 1 b", 6..7, "expected an operator or the end of the condition, found metric `b`");
        check_error("> 1", 0..1, "expected a number, a metric or `(`, found `>`");
        check_error("a > ()", 5..6, "expected a number, a metric or `(`, found `)`");
        check_error("avg(a 10) > 1", 6..8, "expected `,` or `)` in the call of `avg`, found number `10`");
        check_error("avg(a,) > 1", 6..7, "expected a number, a metric or `(`, found `)`");
        check_error("`avg`(x) > 1", 5..6, "expected an operator or the end of the condition, found `(`");
    }
}
