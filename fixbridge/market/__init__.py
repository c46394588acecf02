"""The live market: every venue pool of the spec, in memory, per block, from the chain's logs;
quotes from it in each protocol's exact integer maths. Knows nothing of FIX or of orders."""
