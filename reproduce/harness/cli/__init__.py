"""The commands, on top of the layers: they parse arguments and wire the sweep and report
layers together (a sweep that ends calls the report writers ``reports.REPORTS`` hands it).

    arguments     run.py's arguments (tune.py and advise.py take them too), into a SweepSpec
    reports       the report writers a sweep is given, and the lines that end a job
    run           reproduce/run.py
    report        reproduce/report.py
    tune          reproduce/tune.py
    regress       reproduce/regress.py
    advise        reproduce/advise.py
    warmup_grid   reproduce/warmup_grid.py
"""
