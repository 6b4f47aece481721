"""The ReAct search agent: action records, prompts, safe parser, step machine, rollout loop (issue 4)."""
