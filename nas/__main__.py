from nas.cli import main

if __name__ == "__main__":  # a spawned worker process imports this module too; only `python -m nas` runs the search
    main()
