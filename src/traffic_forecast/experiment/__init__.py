"""Champion vs challenger on live traffic: arms, guardrails, the decision by realised error."""
