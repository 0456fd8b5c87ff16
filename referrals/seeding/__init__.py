"""Demo and generated data, kept apart from the domain areas (`flask seed demo`, `seed scale`).

Nothing here is imported by the application: the command line loads it on demand. The modules
import only the domain's public services, models and rules, never a private name:

- `demo`: the demo scheme's organisations and accounts, then its referrals and courses;
- `demo_referrals`: the demo referrals' intake, planned as data and applied through the
  intake services;
- `demo_courses`: the demo's courses and the people on them, applied through the course
  services;
- `scale`: a scheme of any size for measuring the service, bulk-inserted in committed batches;
  its result keeps the invariants the services keep (tests/test_scale_seed.py checks them).
"""
