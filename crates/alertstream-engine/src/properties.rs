//! Property tests of the condition parser: any expression, written as source with every operation in parentheses,
//! parses back to itself; every node's span, parsed alone, is that node; and no text makes it panic.

use std::time::Duration;

use proptest::prelude::*;

use crate::parser::{BinaryOp, Expr, Node, UnaryOp, parse};

/// Metric names as a condition writes them bare: not a keyword.
fn metric_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,8}".prop_filter("not a keyword", |name| !matches!(name.as_str(), "and" | "or" | "not"))
}

fn node(expr: Expr) -> Node {
    Node { expr, span: 0..0 }
}

/// Any expression the parser can produce (it checks no types: that is the compiler's job).
fn expr() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        // The parser's numbers are never negative: a minus is an operator.
        (0.0..1e12f64).prop_map(|n| node(Expr::Number(n))),
        any::<u32>().prop_map(|n| node(Expr::Number(f64::from(n)))),
        (1u64..100_000).prop_map(|ms| node(Expr::Duration(Duration::from_millis(ms)))),
        metric_name().prop_map(|m| node(Expr::Metric(m))),
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        let binary = prop_oneof![
            Just(BinaryOp::Add),
            Just(BinaryOp::Sub),
            Just(BinaryOp::Mul),
            Just(BinaryOp::Div),
            Just(BinaryOp::Lt),
            Just(BinaryOp::Le),
            Just(BinaryOp::Gt),
            Just(BinaryOp::Ge),
            Just(BinaryOp::Eq),
            Just(BinaryOp::Ne),
            Just(BinaryOp::And),
            Just(BinaryOp::Or),
        ];
        prop_oneof![
            (binary, inner.clone(), inner.clone()).prop_map(|(op, l, r)| node(Expr::Binary(
                op,
                Box::new(l),
                Box::new(r)
            ))),
            inner.clone().prop_map(|operand| node(Expr::Unary(UnaryOp::Neg, Box::new(operand)))),
            inner.clone().prop_map(|operand| node(Expr::Unary(UnaryOp::Not, Box::new(operand)))),
            (metric_name(), prop::collection::vec(inner, 1..3)).prop_map(|(name, args)| node(Expr::Call(name, args))),
        ]
    })
}

/// `node` as condition source, every operation in parentheses.
fn source(node: &Node) -> String {
    match &node.expr {
        Expr::Number(n) => format!("{n}"),
        Expr::Duration(d) => format!("{}ms", d.as_millis()),
        Expr::Metric(name) => name.clone(),
        Expr::Call(name, args) => {
            format!("{name}({})", args.iter().map(source).collect::<Vec<_>>().join(", "))
        }
        Expr::Unary(UnaryOp::Neg, operand) => format!("(-{})", source(operand)),
        Expr::Unary(UnaryOp::Not, operand) => format!("(not {})", source(operand)),
        Expr::Binary(op, lhs, rhs) => format!("({} {} {})", source(lhs), op.symbol(), source(rhs)),
    }
}

proptest! {
    #[test]
    fn any_expression_parses_back_from_its_source(ast in expr()) {
        let text = source(&ast);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
        // The S-expression shows the tree without spans.
        prop_assert_eq!(parsed.to_string(), ast.to_string(), "{}", text);
        // Every node's span lies within the source.
        prop_assert_eq!(parsed.span.end, text.len());
    }

    #[test]
    fn every_nodes_span_is_the_source_of_that_node_alone(ast in expr()) {
        let text = source(&ast);
        let parsed = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e:?}")))?;
        let mut nodes = vec![&parsed];
        while let Some(node) = nodes.pop() {
            let own = &text[node.span.clone()];
            let alone = parse(own).map_err(|e| TestCaseError::fail(format!("{own:?} of {text}: {e:?}")))?;
            prop_assert_eq!(alone.to_string(), node.to_string(), "{:?} of {}", own, text);
            match &node.expr {
                Expr::Call(_, args) => nodes.extend(args),
                Expr::Unary(_, operand) => nodes.push(operand),
                Expr::Binary(_, lhs, rhs) => nodes.extend([&**lhs, &**rhs]),
                Expr::Number(_) | Expr::Duration(_) | Expr::Metric(_) => {}
            }
        }
    }

    #[test]
    fn the_parser_never_panics_on_any_text(text in "\\PC{0,40}") {
        let _ = parse(&text);
    }
}
