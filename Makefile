# labkit: two commands for a new user.
#   make lab    set up .venv, fetch the data, start JupyterLab on the course
#   make test   the same setup, then the whole test suite (what CI runs)
# Other targets: make setup | data | release | student-edition | bench | bench-course | bench-grading | lab5-results | lock | clean
# Grading (the course folder is the repo root unless COURSE=DIR):
#   make collect LAB=03_mlp SOURCE=download.zip [ROSTER=lms-roster.csv] [LMS=canvas|moodle|none]
#   make grade LAB=03_mlp [WORKERS=2]    make feedback LAB=03_mlp    make export
#   make report [LAB=03_mlp] [REPORT_ARGS=--anonymous]   what the class got wrong, as HTML in reports/

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.labkit-installed
COLAB  := .venv-colab
COLAB_STAMP := $(COLAB)/.installed
EXTRAS := grader,dev,cluster
PYTEST_ARGS ?=
LAB_ARGS ?=
BENCH_ARGS ?=
JOBS ?= 2
CLUSTER ?=
LAB ?=
SOURCE ?=
WORKERS ?= 2
COURSE ?=
GRADE_ARGS ?=
REPORT_ARGS ?=
COURSE_ARG := $(if $(COURSE),--course "$(COURSE)")
EDITION ?= build/student-edition

.PHONY: setup system-packages data lab test release student-edition bench bench-course bench-grading lab5-results lock clean collect grade feedback export report need-lab

setup: $(STAMP)

# Re-installs only when the lock or the package metadata changed.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else \
		f"labkit needs Python 3.11 or newer, but $(PYTHON) is {v.major}.{v.minor}. Try: make PYTHON=python3.12 ...")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

data: setup
	$(BIN)/python -m labkit.data fetch

lab: setup data
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --ServerApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--ServerApp.allow_root=True) $(LAB_ARGS)

# A second, Colab-like environment (ipywidgets 7.7, matplotlib 3.10) for tests/test_colab.py.
$(COLAB_STAMP): tests/colab/requirements.txt
	@test -x $(COLAB)/bin/python || $(PYTHON) -m venv $(COLAB)
	$(COLAB)/bin/python -m pip install --quiet -r tests/colab/requirements.txt
	@touch $@

# What the tests need from the system: Debian's chromium (the browser tests; never a browser download),
# bubblewrap (the grading sandbox), postgresql (tests/test_postgres.py starts its own server) and apt's
# package lists (the data layer's `apt-get download` of Fashion-MNIST). Installed only as root with apt;
# elsewhere the tests that need a missing part skip with a line saying what to install (under CI=true
# they fail instead).
SYSTEM_PACKAGES := chromium bubblewrap postgresql
system-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || printf '%s ' $$p; done); \
		if [ -n "$$missing" ] || [ -z "$$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then \
			echo "apt-get update"; apt-get update -qq || echo "apt-get update failed; continuing" >&2; fi; \
		if [ -n "$$missing" ]; then echo "apt-get install $$missing"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi; \
	fi

test: system-packages setup data $(COLAB_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Stamp course.toml into solutions/, then regenerate every student notebook in notebooks/ (nbgrader generate_assignment).
release: setup
	$(BIN)/python -m autograder release

# The student edition (notebooks, labkit, a student README; no solutions, no tests) into EDITION, to push for students.
student-edition: setup
	$(BIN)/python -m autograder publish "$(EDITION)"

bench: setup data
	$(BIN)/python bench/loader.py

# Every lab's solution notebook end to end in quick mode, one process per lab (BENCH_ARGS=--full: full mode too).
bench-course: setup data
	$(BIN)/python bench/course.py $(BENCH_ARGS)

# Lab 5's recorded full-mode results (labkit/reference/05_lenet.json): hours of CPU, JOBS kernels side by side.
lab5-results: setup data
	$(BIN)/python -m autograder results 05_lenet --jobs $(JOBS) $(if $(CLUSTER),--cluster "$(CLUSTER)")

# Grading throughput: plain nbgrader vs the sandboxed grader with 1 and 2 workers and on a loopback Dask
# cluster (bench/grading.py; BENCH_ARGS=--phases: where each lab's submission spends its time).
bench-grading: setup data
	$(BIN)/python bench/grading.py $(BENCH_ARGS)

need-lab:
	@test -n "$(LAB)" || { echo "say which lab: make $(MAKECMDGOALS) LAB=03_mlp"; exit 2; }

# The instructor's pipeline (python -m autograder <command>; see the README, "Grading").
collect: setup need-lab
	@test -n "$(SOURCE)" || { echo "say what to collect: make collect LAB=$(LAB) SOURCE=download.zip"; exit 2; }
	$(BIN)/python -m autograder collect $(LAB) "$(SOURCE)" $(COURSE_ARG) $(if $(ROSTER),--roster "$(ROSTER)") \
		$(if $(LMS),--lms $(LMS))

grade: SYSTEM_PACKAGES := bubblewrap
grade: system-packages setup data need-lab
	$(BIN)/python -m autograder grade $(LAB) --workers $(WORKERS) $(COURSE_ARG) $(GRADE_ARGS)

feedback: setup need-lab
	$(BIN)/python -m autograder feedback $(LAB) $(COURSE_ARG)

export: setup
	$(BIN)/python -m autograder export $(COURSE_ARG) $(if $(LMS),--lms $(LMS))

# No LAB: every graded lab's page and the course's (reports/course.html).
report: setup
	$(BIN)/python -m autograder report $(LAB) $(COURSE_ARG) $(REPORT_ARGS)

# Re-resolve the newest versions pyproject.toml allows into constraints.txt, in a
# throw-away venv.  torch is installed first at 2.13.0 so nothing pulls a newer one.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet torch==2.13.0
	.lock-venv/bin/python -m pip install --quiet -e '.[$(EXTRAS)]'
	{ sed -n '1,3p' constraints.txt; .lock-venv/bin/python -m pip freeze --exclude-editable \
		| grep -v -i -e '^-e' -e '^labkit' | sed 's/^torch==\([0-9.]*\)+.*/torch==\1/'; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) $(COLAB) .pytest_cache build *.egg-info
