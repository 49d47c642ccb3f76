# Sourced by the GPU-machine scripts: tests/gpu/prepare.sh sends each program compressed and without the demo model
# (the tree carries it once); unpack each the first time and put the model back next to it.
for program in Kangaroo.Cli Kangaroo.Tests Kangaroo.Bench Kangaroo.LoadBench; do
  if [ -f ".device/$program.tar.xz" ] && [ ! -d ".device/$program" ]; then
    mkdir -p ".device/$program" && tar xJf ".device/$program.tar.xz" -C ".device/$program"
  fi
  if [ -d ".device/$program" ] && [ ! -d ".device/$program/models/demo" ]; then
    mkdir -p ".device/$program/models" && cp -r models/demo ".device/$program/models/"
  fi
done
