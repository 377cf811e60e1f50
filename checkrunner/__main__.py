from checkrunner.cli import main

raise SystemExit(main())
