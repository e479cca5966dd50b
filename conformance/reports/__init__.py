"""What a run leaves behind: report.json and the formats rendered from it, HAR, replay, diff."""
