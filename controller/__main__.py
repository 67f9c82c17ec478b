from controller.tools.cli import main

raise SystemExit(main())
