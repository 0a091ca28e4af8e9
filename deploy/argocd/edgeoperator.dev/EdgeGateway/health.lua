-- Argo CD health check for edgeoperator.dev/v1alpha1 EdgeGateway (cluster-scoped).
--
-- Argo CD runs this with gopher-lua (Lua 5.1) and, by default, only the base,
-- table and package libraries: no string.* functions and no string methods.
-- The global `obj` is the EdgeGateway; the script returns {status, message}.
--
-- Rules, first match wins (deploy/argocd/README.md has the same table):
--   1. metadata.deletionTimestamp set         -> Progressing "Deleting: restoring edge nodes"
--   2. no status.observedGeneration           -> Progressing "Waiting for the operator to reconcile the gateway"
--   3. observedGeneration ~= generation       -> Progressing "Waiting for the operator to observe generation N"
--   4. NodesConfigured False, reason neither
--      Paused nor TaintPending (a refusal)    -> Degraded  "NodesConfigured: <reason>: <message>"
--   5. phase Degraded                         -> Degraded  "<type>: <reason>: <message>" of Ready when it
--      is False, else of the first False of NodesConfigured, ControllerAvailable, LoadBalancerReady
--   6. phase Paused                           -> Suspended "Paused: <NodesConfigured message>" when
--      NodesConfigured is False with reason Paused, else "Paused: spec.paused is true"
--   7. Ready True                             -> Healthy   with the Ready message
--   8. anything else                          -> Progressing with the Ready message

local hs = {}

-- NodesConfigured False with these reasons is a wait, not a refusal.
local waitingReasons = { Paused = true, TaintPending = true }
-- Conditions Ready depends on, in the order the operator reports them.
local readyDependsOn = { "NodesConfigured", "ControllerAvailable", "LoadBalancerReady" }

local function findCondition(conditions, condType)
  for _, condition in ipairs(conditions) do
    if condition.type == condType then
      return condition
    end
  end
  return nil
end

local function isEmpty(value)
  return value == nil or value == ""
end

-- "<type>: <reason>: <message>", leaving out an empty reason or message.
local function describe(condition)
  local text = condition.type
  if not isEmpty(condition.reason) then
    text = text .. ": " .. condition.reason
  end
  if not isEmpty(condition.message) then
    text = text .. ": " .. condition.message
  end
  if text == condition.type then
    text = text .. " is " .. tostring(condition.status)
  end
  return text
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: restoring edge nodes"
  return hs
end

local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile the gateway"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions or {}
local ready = findCondition(conditions, "Ready")
local nodes = findCondition(conditions, "NodesConfigured")

if nodes ~= nil and nodes.status == "False" and not waitingReasons[nodes.reason] then
  hs.status = "Degraded"
  hs.message = describe(nodes)
  return hs
end

if status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = "status.phase is Degraded"
  local failing = nil
  if ready ~= nil and ready.status == "False" then
    failing = ready
  else
    for _, condType in ipairs(readyDependsOn) do
      local condition = findCondition(conditions, condType)
      if failing == nil and condition ~= nil and condition.status == "False" then
        failing = condition
      end
    end
  end
  if failing ~= nil then
    hs.message = describe(failing)
  end
  return hs
end

if status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Paused: spec.paused is true"
  if nodes ~= nil and nodes.status == "False" and nodes.reason == "Paused"
      and not isEmpty(nodes.message) then
    hs.message = "Paused: " .. nodes.message
  end
  return hs
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  if isEmpty(hs.message) then
    hs.message = "EdgeGateway is ready"
  end
  return hs
end

hs.status = "Progressing"
hs.message = ready.message
if isEmpty(hs.message) then
  hs.message = describe(ready)
end
return hs
