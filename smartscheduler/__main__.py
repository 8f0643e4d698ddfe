from smartscheduler.cli import main

raise SystemExit(main())
