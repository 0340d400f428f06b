"""The data engine (`genspot synth`): fakes made from real photos by a generator's own decoder,
aligned with their photos, with probes and splice masks; written as an archive genspot reads in place."""
