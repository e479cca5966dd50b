"""What to send: cases, strategies, the budgeted plan and the coverage it aims at."""
