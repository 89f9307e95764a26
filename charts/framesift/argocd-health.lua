-- Argo CD health check for framesift.dev/ActiveLearningRun (docs/operator.md)
hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end
local phase = obj.status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "selected " .. tostring(obj.status.selected or 0) .. " frames"
elseif phase == "Failed" then
  hs.status = "Degraded"
  hs.message = obj.status.message or "failed"
elseif obj.status.message ~= nil and string.find(obj.status.message, "waiting for admission") then
  hs.status = "Suspended"
  hs.message = obj.status.message
else
  hs.status = "Progressing"
  hs.message = phase
end
return hs
