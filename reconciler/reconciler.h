// The reconciler's public door. Level-triggered, as a Kubernetes controller:
//   1. desired_state(project, options)   what the compose project asks for
//   2. ObservedState                      one snapshot of the world, taken by
//                                         the caller before planning
//   3. plan(desired, observed, options)   a pure DAG of atomic operations;
//      plan_down(observed, options)       planning never calls the outside
//   4. Executor / run_plan               walks the DAG through a Driver
// Planning twice against the result of the first plan yields zero operations.
#pragma once

#include "reconciler/executor.h"
#include "reconciler/plan.h"
#include "reconciler/state.h"
