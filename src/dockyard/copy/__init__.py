"""The copy engine: plan the descriptor graph, then execute it between targets."""
