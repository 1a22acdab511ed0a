//! The pure half of the drivers' property test, on its own: every generated case deploys
//! (its inventory written as YAML reads back as the same inventory), and the simulation
//! reaches a quiet point after each of its inputs with every invariant of the simulation
//! holding. The YAML writer also round-trips workflows of every instruction (the replay
//! test's generator, made deployable).

use ordo_model::inventory::{Agent, Selection};
use ordo_model::testkit::driven::{self, case, deployable};
use ordo_model::testkit::generate::{self, name};
use ordo_model::testkit::render::inventory_yaml;
use ordo_model::yaml::{Limits, SourceFile, parse_inventory};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn reads_back(inventory: &ordo_model::inventory::Inventory) -> ordo_model::inventory::Inventory {
    let yaml = inventory_yaml(inventory);
    parse_inventory(
        &[SourceFile::new("case.yaml", yaml.clone())],
        &Limits::default(),
    )
    .unwrap_or_else(|d| panic!("{d:?}\n{yaml}"))
}

fn agents() -> Vec<Agent> {
    ["a1", "a2"]
        .iter()
        .enumerate()
        .map(|(i, id)| Agent {
            id: name(id),
            url: format!("wss://127.0.0.1:{}", 4440 + i),
            certificate_name: None,
            subagents: Vec::new(),
            selection: Selection::default(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn driven_cases_deploy_and_reach_quiet_points(case in case(30)) {
        let inventory = driven::inventory(&case.steps, "exit 0", agents());
        prop_assert_eq!(&reads_back(&inventory), &inventory);
        let expected = driven::expect(&inventory, &case);
        prop_assert!(!expected.points.is_empty(), "the first input adds an order");
        for pair in expected.points.windows(2) {
            prop_assert!(pair[0].runs <= pair[1].runs);
        }
    }

    #[test]
    fn every_instruction_is_written_back_as_it_was(
        steps in prop::collection::vec(generate::instruction(), 1..5),
    ) {
        let mut steps = deployable(&steps);
        if steps.is_empty() {
            steps.push(generate::run("j1"));
        }
        let mut inventory = generate::inventory(steps);
        inventory.agents = agents();
        prop_assert_eq!(&reads_back(&inventory), &inventory);
    }
}
