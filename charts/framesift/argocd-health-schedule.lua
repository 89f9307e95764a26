-- Argo CD health check for framesift.dev/ActiveLearningSchedule (docs/operator.md)
hs = {}
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is set: no ticks"
  return hs
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Scheduling" and condition.status == "False" then
    hs.status = "Degraded"
    hs.message = condition.message or condition.reason
    return hs
  end
end
hs.status = "Healthy"
hs.message = "next tick " .. tostring(obj.status.nextScheduleTime or "-")
if obj.status.lastSuccessfulRun ~= nil then
  hs.message = hs.message .. "; last successful run " .. obj.status.lastSuccessfulRun
end
return hs
